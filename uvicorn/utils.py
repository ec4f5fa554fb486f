"""``from uvicorn.utils import ASGIAdapter, WSGIAdapter``: the adapters, where the README
imports them from (they live in ``uvicorn.adapters``).

* ``ASGIAdapter(wsgi_app)``: a WSGI application served as a messaging-interface app.
* ``WSGIAdapter(app)``: a messaging-interface app served by any WSGI server.
"""

from uvicorn.adapters import ASGIAdapter, WSGIAdapter

__all__ = ["ASGIAdapter", "WSGIAdapter"]
