"""Every request passes these, outermost first: trace id and access log; security headers, CORS and
gzip for large JSON; errors to the envelope (innermost, so the others see its responses)."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
import sqlalchemy.exc
from aiohttp import web

from common.errors import DomainError, RateLimited
from common.tracing import accept_trace_id, trace_id_var
from web import envelope
from web.keys import CLIENT_IP, SETTINGS, TRACE_ID
from web.metrics import observe_request

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DATA_ERRORS = (psycopg.DataError, sqlalchemy.exc.DataError)
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
async def trace_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    trace_id = accept_trace_id(request.headers.get("X-Trace-ID"))
    token = trace_id_var.set(trace_id)
    request[TRACE_ID] = trace_id
    request[CLIENT_IP] = client_ip(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Trace-ID"] = trace_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        observe_request(request, status, elapsed)
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "ms": round(elapsed * 1000, 2),
                "ip": request[CLIENT_IP],
            },
        )
        trace_id_var.reset(token)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    trace_id = request.get(TRACE_ID)
    try:
        return await handler(request)
    except DomainError as exc:
        headers = _rate_limit_headers(exc) if isinstance(exc, RateLimited) else None
        return envelope.error(
            exc.status, exc.message, errors=exc.errors, code=exc.code, headers=headers
        )
    except _DATA_ERRORS as exc:
        # A value PostgreSQL cannot hold (a NUL in text, a number out of its column's range) that
        # validation let through: the client's data is at fault, and the transaction rolled back.
        log.warning("value refused by the database", extra={"path": request.path,
                                                             "error": type(exc).__name__})
        return envelope.error(422, "Invalid value", code="invalid")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status) or exc.reason
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return envelope.error(exc.status, message, headers=headers)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return envelope.error(500, "Internal server error", trace_id=trace_id)


def _rate_limit_headers(exc: RateLimited) -> dict[str, str]:
    headers = {"Retry-After": str(exc.retry_after)}
    if exc.limit:
        headers["RateLimit-Limit"] = str(exc.limit)
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(exc.reset or exc.retry_after)
    return headers


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origins = request.app[SETTINGS].allowed_origins
    origin = request.headers.get("Origin")
    allowed = origin if origin and origin in origins else None
    if request.method == "OPTIONS" and allowed and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = (
            "Authorization, Content-Type, Idempotency-Key, X-Trace-ID"
        )
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    if response.prepared:  # WebSocket and streamed responses sent their own headers
        return response
    response.headers.update(_SECURITY_HEADERS)
    if request.path.startswith("/api") and "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = _API_CSP
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = (
            "X-Trace-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
        )
        response.headers["Vary"] = "Origin"
    if (
        isinstance(response, web.Response)
        and response.content_type == envelope.JSON
        and response.body is not None
        and len(response.body) >= GZIP_MIN_BYTES  # type: ignore[arg-type]
        and "gzip" in request.headers.get("Accept-Encoding", "")
    ):
        response.enable_compression(web.ContentCoding.gzip)
    return response


MIDDLEWARES = [trace_middleware, headers_middleware, error_middleware]
