"""What every request passes through: the trace id, errors turned into the envelope, security
headers, CORS, gzip for large JSON, request metrics and the JSON access log. A route that holds
its connection (``GET /ws``) does the same in its own frame, with the functions at the end."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
import sqlalchemy.exc
from aiohttp import web
from multidict import CIMultiDict, istr

from common.errors import DomainError, RateLimited
from common.outages import DATABASE_DOWN, REDIS_DOWN
from common.tracing import accept_trace_id, trace_id_var
from web import envelope
from web.deprecation import headers_for as retirement_headers
from web.keys import CLIENT_IP, SETTINGS, TRACE_ID
from web.metrics import observe_request

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DATA_ERRORS = (psycopg.DataError, sqlalchemy.exc.DataError)
# A dependency that is down (common/outages.py) is answered 503 here, in one place, whichever
# handler met it (docs/api.md "Envelope").
_DATABASE_DOWN = DATABASE_DOWN
_REDIS_DOWN = REDIS_DOWN
UNAVAILABLE_RETRY_AFTER = "2"
access_log = logging.getLogger("savebucks.access")
log = logging.getLogger(__name__)

GZIP_MIN_BYTES = 1024
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Built once with their names normalised: added to every response, they are copied, not parsed.
_SECURITY = CIMultiDict(_SECURITY_HEADERS)
_CSP = istr("Content-Security-Policy")
_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
}


def client_ip(request: web.Request) -> str:
    """The peer address, or the first untrusted hop of X-Forwarded-For behind our own proxies."""
    peer = request.remote or ""
    trusted = request.app[SETTINGS].trusted_proxies
    forwarded = request.headers.get("X-Forwarded-For")
    if not forwarded or not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in trusted)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Trace id, errors to the envelope, headers, metrics and the access log, in one layer.

    One middleware rather than three: aiohttp wraps every middleware anew for every request, and
    on the hot reads that wrapping cost as much as the handler's own work.
    """
    trace_id = accept_trace_id(request.headers.get("X-Trace-ID"))
    token = trace_id_var.set(trace_id)
    request[TRACE_ID] = trace_id
    request[CLIENT_IP] = client_ip(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await _answer(request, handler, trace_id)
        status = response.status
        if not response.prepared:  # WebSocket and streamed responses sent their own headers
            response.headers["X-Trace-ID"] = trace_id
            _add_headers(request, response)
        return response
    finally:
        _record(request, status, time.perf_counter() - started, request[CLIENT_IP])
        trace_id_var.reset(token)


def _record(request: web.Request, status: int, elapsed: float, ip: str) -> None:
    """The request's metrics and its access log line."""
    observe_request(request, status, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "ms": round(elapsed * 1000, 2),
                "ip": ip,
            },
        )


async def _answer(request: web.Request, handler: Handler, trace_id: str) -> web.StreamResponse:
    """The handler's response, or the envelope of the error it raised."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        preflight = _preflight(request)
        if preflight is not None:
            return preflight
    try:
        return await handler(request)
    except DomainError as exc:
        headers = rate_limit_headers(exc) if isinstance(exc, RateLimited) else None
        return envelope.error(
            exc.status, exc.message, errors=exc.errors, code=exc.code, headers=headers
        )
    except _DATA_ERRORS as exc:
        # A value PostgreSQL cannot hold (a NUL in text, a number out of its column's range) that
        # validation let through: the client's data is at fault, and the transaction rolled back.
        log.warning("value refused by the database", extra={"path": request.path,
                                                             "error": type(exc).__name__})
        return envelope.error(422, "Invalid value", code="invalid")
    except _DATABASE_DOWN + _REDIS_DOWN as exc:
        return unavailable(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status) or exc.reason
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return envelope.error(exc.status, message, headers=headers)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return envelope.error(500, "Internal server error", trace_id=trace_id)


def unavailable(request: web.Request, exc: BaseException) -> web.Response:
    """503 in the envelope for a dependency that is down. The answer names no server, address
    or query; the log says which kind of dependency and the error's class."""
    dependency = "redis" if isinstance(exc, _REDIS_DOWN) else "database"
    log.warning("dependency unavailable", extra={"path": request.path, "dependency": dependency,
                                                 "error": type(exc).__name__})
    return envelope.error(503, "Service temporarily unavailable, try again shortly",
                          code="unavailable", headers={"Retry-After": UNAVAILABLE_RETRY_AFTER})


def rate_limit_headers(exc: RateLimited) -> dict[str, str]:
    headers = {"Retry-After": str(exc.retry_after)}
    if exc.limit:
        headers["RateLimit-Limit"] = str(exc.limit)
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(exc.reset or exc.retry_after)
    return headers


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin and origin in request.app[SETTINGS].allowed_origins else None


def _preflight(request: web.Request) -> web.Response | None:
    if _allowed_origin(request) is None:
        return None
    response = web.Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = (
        "Authorization, Content-Type, Idempotency-Key, X-Trace-ID"
    )
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers, CORS for allowed origins, and gzip for large JSON."""
    response.headers.update(_SECURITY)
    retired = retirement_headers(request)
    if retired:
        response.headers.update(retired)
    if request.path.startswith("/api") and _CSP not in response.headers:
        response.headers[_CSP] = _API_CSP
    allowed = _allowed_origin(request)
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = (
            "X-Trace-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
        )
        response.headers["Vary"] = "Origin"
    if (  # the cheap tests first: most answers are small, most clients (networks) ask no gzip
        "gzip" in request.headers.get("Accept-Encoding", "")
        and isinstance(response, web.Response)
        and response.body is not None
        and len(response.body) >= GZIP_MIN_BYTES  # type: ignore[arg-type]
        and response.content_type == envelope.JSON
    ):
        response.enable_compression(web.ContentCoding.gzip)


# -- routes that hold their connection (GET /ws) ------------------------------------------------
# A WebSocket's handler runs for as long as its socket lives, and every coroutine frame around it
# is held that long with its locals: api_middleware's and _answer's, with the trace id's context
# token and the request's state, were about 1 KB per idle socket (docs/performance.md
# "WebSockets"). Such a handler is marked ``holds_connection``: the outermost middleware hands
# aiohttp its coroutine directly, and the handler does api_middleware's duties itself with the
# three functions after it (trace id; the envelope and headers of an answer that is not the
# upgrade; metrics and the access log when it ends).

_HOLDS = "holds_connection"


def holds_connection(handler: Handler) -> Handler:
    """Mark a route's handler: ``held_connections`` hands aiohttp its coroutine directly."""
    setattr(handler, _HOLDS, handler)
    return handler


@web.middleware
def held_connections(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """A plain function, not a coroutine function: aiohttp awaits what it returns, and for every
    other route that is the next middleware's coroutine, with no frame of this one around it.

    The mark is read on ``handler``, aiohttp's wrapper of the route's handler in the next
    middleware: aiohttp builds its chain with ``functools.update_wrapper``, which copies the route
    handler's attributes onto every layer (cheaper than the request's ``match_info.handler``, by
    about 1,400 instructions a request). Were it not there, the route would still be answered,
    through api_middleware (tests/web/realtime/test_request.py checks that it is not)."""
    held = getattr(handler, _HOLDS, None)
    return handler(request) if held is None else held(request)


def begin_held(request: web.Request) -> str:
    """The trace id, set for the logs of the request's task. Not reset (and no token kept):
    aiohttp runs each request in a task of its own, whose context ends with it."""
    trace_id = accept_trace_id(request.headers.get("X-Trace-ID"))
    trace_id_var.set(trace_id)
    return trace_id


async def answer_held(request: web.Request, handler: Handler, trace_id: str) -> web.StreamResponse:
    """``handler``'s response (the upgrade), or the envelope of its error with the headers that
    api_middleware adds; awaited only until the upgrade, so that its frames are not kept."""
    response = await _answer(request, handler, trace_id)
    if not response.prepared:
        response.headers["X-Trace-ID"] = trace_id
        _add_headers(request, response)
    return response


def end_held(request: web.Request, status: int, started: float) -> None:
    """Metrics and the access log, as api_middleware writes them (the address read only now)."""
    _record(request, status, time.perf_counter() - started, client_ip(request))


MIDDLEWARES = [held_connections, api_middleware]
