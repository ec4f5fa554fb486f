import sys

from uvicorn.cli import main

sys.exit(main())
