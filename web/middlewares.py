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
# An API answer that is not retired and sets no policy of its own (nearly all of them) takes the
# security headers and the policy in one update, in the order the steps below would add them.
_SECURITY_AND_CSP = CIMultiDict(_SECURITY_HEADERS)
_SECURITY_AND_CSP[_CSP] = _API_CSP
_TRACE_HEADER = istr("X-Trace-ID")
_ORIGIN = istr("Origin")
_ACCEPT_ENCODING = istr("Accept-Encoding")
_FORWARDED_FOR = istr("X-Forwarded-For")
_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
}


def client_ip(request: web.Request) -> str:
    """The peer address, or the first untrusted hop of X-Forwarded-For behind our own proxies."""
    peer = request.remote or ""
    forwarded = request.headers.get(_FORWARDED_FOR)
    if not forwarded:  # the common case: no proxy in front, nothing more to read
        return peer
    trusted = request.app[SETTINGS].trusted_proxies
    if not trusted or not _is_trusted(peer, trusted):
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
    on the hot reads that wrapping cost as much as the handler's own work. The handler is awaited
    here, not in a helper coroutine: one frame less on every request.
    """
    trace_id = accept_trace_id(request.headers.get(_TRACE_HEADER))
    token = trace_id_var.set(trace_id)
    request[TRACE_ID] = trace_id
    request[CLIENT_IP] = client_ip(request)
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse | None = None
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = _preflight(request)
        if response is None:
            try:
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001  (every error is answered: _error_answer)
                response = _error_answer(request, exc, trace_id)
        status = response.status
        _add_headers(request, response, trace_id)
        return response
    finally:
        _record(request, status, started, request[CLIENT_IP])
        trace_id_var.reset(token)


def _error_answer(request: web.Request, exc: Exception, trace_id: str) -> web.StreamResponse:
    """The envelope of the error a handler raised (a redirect and other 3xx go on up)."""
    if isinstance(exc, DomainError):
        headers = rate_limit_headers(exc) if isinstance(exc, RateLimited) else None
        return envelope.error(
            exc.status, exc.message, errors=exc.errors, code=exc.code, headers=headers
        )
    if isinstance(exc, _DATA_ERRORS):
        # A value PostgreSQL cannot hold (a NUL in text, a number out of its column's range) that
        # validation let through: the client's data is at fault, and the transaction rolled back.
        log.warning("value refused by the database", extra={"path": request.path,
                                                             "error": type(exc).__name__})
        return envelope.error(422, "Invalid value", code="invalid")
    if isinstance(exc, _DATABASE_DOWN + _REDIS_DOWN):
        return unavailable(request, exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        message = _HTTP_MESSAGES.get(exc.status) or exc.reason
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return envelope.error(exc.status, message, headers=headers)
    log.exception("unhandled error", extra={"path": request.path}, exc_info=exc)
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
    origin = request.headers.get(_ORIGIN)
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


def _add_headers(request: web.Request, response: web.StreamResponse, trace_id: str) -> None:
    """The trace id, security headers, CORS for allowed origins, and gzip for large JSON; none
    on a response already sent (a WebSocket, a stream: they sent their own headers)."""
    if response.prepared:
        return
    headers = response.headers
    headers[_TRACE_HEADER] = trace_id
    retired = retirement_headers(request)
    api_policy = _CSP not in headers and request.path.startswith("/api")
    if api_policy and not retired:
        headers.update(_SECURITY_AND_CSP)
    else:
        headers.update(_SECURITY)
        if retired:
            headers.update(retired)
        if api_policy:
            headers[_CSP] = _API_CSP
    request_headers = request.headers
    if _ORIGIN in request_headers:
        allowed = _allowed_origin(request)
        if allowed:
            headers["Access-Control-Allow-Origin"] = allowed
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Expose-Headers"] = (
                "X-Trace-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
            )
            headers["Vary"] = "Origin"
    if (  # the cheap tests first: most answers are small, most clients (networks) ask no gzip
        "gzip" in request_headers.get(_ACCEPT_ENCODING, "")
        and isinstance(response, web.Response)
        and response.body is not None
        and len(response.body) >= GZIP_MIN_BYTES  # type: ignore[arg-type]
        and response.content_type == envelope.JSON
    ):
        response.enable_compression(web.ContentCoding.gzip)


# -- routes that hold their connection (GET /ws) ------------------------------------------------
# A WebSocket's handler runs for as long as its socket lives, and every coroutine frame around it
# is held that long with its locals: api_middleware's, with the trace id's context token and the
# request's state, would be kept for every idle socket (docs/performance.md "WebSockets"). Such a
# handler is marked ``holds_connection``: the outermost middleware hands aiohttp its coroutine
# directly, and the handler does api_middleware's duties itself with the three functions after it
# (trace id; the envelope and headers of an answer that is not the upgrade; metrics and the access
# log line when it ends). api_middleware itself is unchanged.

_HOLDS = "holds_connection"


def holds_connection(handler: Handler) -> Handler:
    """Mark a route's handler: ``held_connections`` hands aiohttp its coroutine directly."""
    setattr(handler, _HOLDS, handler)
    return handler


def check_held_routes(app: web.Application) -> None:
    """Refuse to start when a route's handler carries the mark of another function: a decorator
    put over ``@holds_connection`` (``functools.wraps`` copies the mark) would be skipped by
    ``held_connections``, and the route would run without it and without api_middleware."""
    for route in app.router.routes():
        held = getattr(route.handler, _HOLDS, None)
        if held is not None and held is not route.handler:
            raise RuntimeError(f"{route.method} {route.resource}: @holds_connection must be the "
                               "outermost decorator of a route's handler")


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
    aiohttp runs each request in a task of its own, whose context ends with it. Unlike
    api_middleware this stores neither ``request[TRACE_ID]`` nor ``request[CLIENT_IP]`` (memory
    held for the socket's life): a held handler asks ``client_ip(request)`` when it needs it."""
    trace_id = accept_trace_id(request.headers.get(_TRACE_HEADER))
    trace_id_var.set(trace_id)
    return trace_id


async def answer_held(request: web.Request, handler: Handler, trace_id: str) -> web.StreamResponse:
    """``handler``'s response (the upgrade), or the envelope of its error with the headers that
    api_middleware adds; awaited only until the upgrade, so that its frames are not kept."""
    try:
        response = await handler(request)
    except Exception as exc:  # noqa: BLE001  (every error is answered: _error_answer)
        response = _error_answer(request, exc, trace_id)
    _add_headers(request, response, trace_id)
    return response


def end_held(request: web.Request, status: int, started: float) -> None:
    """Metrics and the access log line, as api_middleware writes them. The client address is
    read only now, not kept for the socket's life."""
    _record(request, status, started, client_ip(request))


def _record(request: web.Request, status: int, started: float, ip: str) -> None:
    """A request's metrics and access log line (one place for both kinds of route; the call
    costs a request about 800 instructions, some 2% of the middleware's own work by callgrind)."""
    elapsed = time.perf_counter() - started
    observe_request(request, status, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info("request", extra={
            "method": request.method, "path": request.path, "status": status,
            "ms": round(elapsed * 1000, 2), "ip": ip})


MIDDLEWARES = [held_connections, api_middleware]
