"""uvicorn: a lightning-fast asyncio server for Python 3, on uvloop and httptools."""

from uvicorn.config import Config
from uvicorn.exceptions import ClientDisconnected
from uvicorn.main import run

__version__ = "0.1.0"
__all__ = ["ClientDisconnected", "Config", "__version__", "run"]
