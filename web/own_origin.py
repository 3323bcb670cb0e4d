"""Whether a browser's request comes from a page this app served (the console, the demo page):
its ``Origin`` names the host the request came to. The one rule behind the ``/ws`` origin check
and the refresh cookie (docs/console.md)."""

from __future__ import annotations

from aiohttp import web


def is_own_origin(request: web.Request, origin: str) -> bool:
    """Only the host and port are compared: behind a TLS-terminating proxy the app sees http
    while the page's origin is https. A browser cannot choose the Host it sends; a request with
    none (or an empty one) has no own origin, so ``null`` never matches."""
    host = request.host
    return bool(host) and origin.partition("://")[2] == host
