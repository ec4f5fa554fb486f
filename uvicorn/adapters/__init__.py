"""Adapters between the messaging interface and WSGI (PEP 3333), both ways.

This package imports only the base modules (``tests/test_layering.py``): it runs in any WSGI
server, where none of our worker is loaded.
"""

from uvicorn.adapters.asgi_adapter import ASGIAdapter
from uvicorn.adapters.wsgi_adapter import WSGIAdapter

__all__ = ["ASGIAdapter", "WSGIAdapter"]
