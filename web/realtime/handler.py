"""``GET /ws``: the upgrade, authentication, the replay of missed events, and the read loop.

1. The ``Origin`` (when a browser sends one) must be an allowed origin or the app's own (the
   console and the demo page that this app serves), checked before the upgrade: a refused
   origin gets the 403 envelope and no socket.
2. The token comes from ``?token=`` or from a first ``auth`` frame within ``WS_AUTH_TIMEOUT``;
   a bad one closes with 4401, a blocked account with 4403.
3. ``ready {userId}``, then the user's events after ``since`` (or ``sync:refetch``), then live
   events: the hub holds the live ones while the replay is sent, so each arrives once, in order.
4. Client frames are answered one at a time; a bad frame gets ``error {message, code}``.
5. The hub closes the socket (4401) once its token, plus ``WS_TOKEN_GRACE``, has expired; an
   ``auth`` frame with a fresh token pushes that back.

The handler is reached with no middleware frame around it (``web.middlewares.holds_connection``)
and does the middleware's duties itself: a trace id for its logs, the envelope and headers of an
answer that is not the upgrade, metrics and the access log line when the socket ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter
from sqlalchemy import bindparam, select

from common.errors import DomainError, Forbidden, Unauthorized
from common.models.users import User
from common.outages import DEPENDENCY_DOWN
from common.security.tokens import AccessClaims, InvalidToken, decode_access_token
from common.sql import compile_query
from web.keys import ACCOUNT_GATE, DB, HUB, SEATS, SETTINGS
from web.middlewares import answer_held, begin_held, end_held, holds_connection
from web.own_origin import is_own_origin
from web.realtime import chat, protocol
from web.realtime.connection import NO_IDS, WRITE_HIGH_WATER, Connection
from web.realtime.protocol import FrameError
from web.realtime.resume import missed_events, parse_since

log = logging.getLogger(__name__)
EventHandler = Callable[[web.Application, Connection, dict[str, Any]], Awaitable[bytes | None]]
_STATUS = compile_query(select(User.status).where(User.id == bindparam("user_id")))


@holds_connection
async def websocket(request: web.Request) -> web.StreamResponse:
    """Reached with no middleware frame around it (``web.middlewares.held_connections``): the
    socket's whole life runs in this one frame, which does the middleware's duties itself."""
    # Its locals are memory held as long as the socket: as few as will do.
    started, status = time.perf_counter(), 500
    try:
        opened: list[Connection] = []
        # Everything up to the live events goes through the middleware's error handling, as any
        # handler's: an error before the upgrade is answered in the envelope.
        ws = await answer_held(request, functools.partial(_open, opened), begin_held(request))
        status = ws.status
        if not opened:
            return ws
        conn = opened.pop()
        del opened  # the empty list would be kept with the frame
        # The read loop runs here rather than in a coroutine of its own: every frame an idle
        # socket keeps suspended is memory held for as long as the socket lives.
        app, ws, loop = request.app, conn.ws, asyncio.get_running_loop()
        try:
            async for msg in ws:
                conn.seen = loop.time()  # any frame answers the heartbeat
                if msg.type is WSMsgType.TEXT:
                    reply = await _dispatch(app, conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    reply = protocol.error("Frames must be JSON text", "bad_frame")
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                    continue
                elif msg.type is WSMsgType.PONG:
                    continue
                else:  # ERROR: aiohttp has closed the socket (1009 for a frame over the limit)
                    break
                if reply is not None and not conn.send(reply):
                    _too_slow(app, conn)
        except (ConnectionError, RuntimeError):  # the peer vanished
            pass
        finally:
            await _end(app, conn)
        return ws
    finally:
        end_held(request, status, started)


async def _open(opened: list[Connection], request: web.Request) -> web.StreamResponse:
    """The upgrade, authentication, registration and the replay; the registered socket is
    appended to ``opened`` (nothing is when it was refused or closed)."""
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if origin is not None and origin not in settings.allowed_origins and not is_own_origin(request, origin):
        raise Forbidden("Origin not allowed")
    ws = web.WebSocketResponse(
        # The hub keeps the heartbeat (one sweep, not timers per socket), so pings and pongs
        # come to the read loop.
        autoping=False,
        max_msg_size=settings.ws_max_frame_bytes,
        # Deflate costs a compressor per socket (memory) and per frame per socket (CPU) on fan-out.
        compress=False,
    )
    stream = await ws.prepare(request)
    try:
        return await _upgraded(opened, request, ws, stream)
    except DEPENDENCY_DOWN as exc:
        # Upgraded: the middleware's 503 would be written as HTTP bytes into a WebSocket. Close
        # with 1013 (try again later) instead; the client reconnects with ``since``.
        log.warning("dependency unavailable on a new socket", extra={"error": type(exc).__name__})
        await ws.close(code=protocol.TRY_AGAIN, message=b"service temporarily unavailable")
        return ws


async def _upgraded(opened: list[Connection], request: web.Request, ws: web.WebSocketResponse,
                    stream: AbstractStreamWriter) -> web.WebSocketResponse:
    """``_open`` after the upgrade: authentication, registration and the replay."""
    app, settings = request.app, request.app[SETTINGS]
    _limit_buffers(request, settings.ws_socket_send_buffer)
    hub = app[HUB]
    hub.pending.add(ws)
    try:
        login = await _authenticate(app, ws, request)
    finally:
        hub.pending.discard(ws)
    if login is None:
        return ws
    claims, since = login
    conn = Connection(ws, stream, claims.user_id, limit=settings.ws_send_queue)
    conn.expires_at = claims.expires_at + settings.ws_token_grace
    admin = claims.role == "admin"  # checked current by _authenticate's account gate
    if not await _register(app, conn):
        return ws
    try:
        await _start(app, conn, since, admin=admin)
    except (ConnectionError, RuntimeError):  # the peer vanished mid-replay
        await _end(app, conn)
        return ws
    except BaseException:
        await _end(app, conn)
        raise
    opened.append(conn)
    return ws


async def _end(app: web.Application, conn: Connection) -> None:
    app[HUB].unregister(conn)
    await app[SEATS].give_back(conn)
    conn.stop()
    if conn.close_task is not None:
        await conn.close_task


def _limit_buffers(request: web.Request, send_buffer: int) -> None:
    transport = request.transport
    if transport is None:
        return
    # Paused exactly when Connection queues, so that its writer's drain() really waits.
    transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
    sock = transport.get_extra_info("socket")
    if send_buffer and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)


async def _register(app: web.Application, conn: Connection) -> bool:
    """Take the socket's seat and register it with the hub; False once it was closed (4429)."""
    hub, seats = app[HUB], app[SEATS]
    # The cap counts the user's sockets on every instance (seats), and on this one (hub).
    here = len(hub.users.get(conn.user_id, ()))
    if not await seats.take(conn, local_count=here) or not hub.register(conn):
        await seats.give_back(conn)
        await _close(conn.ws, protocol.TOO_MANY, "too many sockets")
        return False
    return True


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    if not ws.closed:
        await ws.close(code=code, message=reason.encode())


# -- authentication -----------------------------------------------------------------------------

async def _authenticate(app: web.Application, ws: web.WebSocketResponse,
                        request: web.Request) -> tuple[AccessClaims, int | None] | None:
    """The token's claims and ``since``, or None once the socket was closed with the reason."""
    query = _query(request)
    token: object = query.get("token")
    since: object = query.get("since")
    if not token:
        first = await _auth_frame(ws, app[SETTINGS].ws_auth_timeout)
        if first is None:
            await _close(ws, protocol.UNAUTHORIZED, "authentication required")
            return None
        token, since = first.get("token"), first.get("since")
    claims = _claims(app, token)
    if claims is None:
        await _close(ws, protocol.UNAUTHORIZED, "invalid or expired token")
        return None
    refused = await _account_refusal(app, claims)
    if refused is not None:
        await _close(ws, refused, "account not active")
        return None
    return claims, parse_since(since)


async def _auth_frame(ws: web.WebSocketResponse, timeout: float) -> dict[str, Any] | None:
    """The data of the first frame if it is ``auth``; None on timeout or anything else. Pings
    before it are answered (the socket has ``autoping`` off: the hub keeps the heartbeat)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            msg = await ws.receive(timeout=max(0.0, deadline - loop.time()))
        except TimeoutError:
            return None
        if msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is not WSMsgType.PONG:
            break
    if msg.type is not WSMsgType.TEXT:
        return None
    try:
        event, data = protocol.parse_frame(msg.data)
    except FrameError:
        return None
    return data if event == "auth" else None


def _claims(app: web.Application, token: object) -> AccessClaims | None:
    if not isinstance(token, str) or not token or len(token) > 4096:
        return None
    try:
        return decode_access_token(app[SETTINGS], token)
    except InvalidToken:
        return None


async def _account_refusal(app: web.Application, claims: AccessClaims) -> int | None:
    """The close code when the account may not connect (blocked, or gone), else None."""
    gate = app.get(ACCOUNT_GATE)
    if gate is not None:
        try:
            return protocol.FORBIDDEN if await gate(app, claims) else None
        except Unauthorized:  # the token claims a role the user no longer has
            return protocol.UNAUTHORIZED
    row = await app[DB].fetch_one(_STATUS, {"user_id": claims.user_id})
    if row is None:
        return protocol.UNAUTHORIZED
    return None if row["status"] == "active" else protocol.FORBIDDEN


def _query(request: web.Request) -> dict[str, str]:
    """The query's parameters (the first of each name), parsed here: ``request.query`` would
    keep a parsed copy, the token included, on the request for as long as the socket lives."""
    params: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(request.rel_url.raw_query_string,
                                              keep_blank_values=True):
        params.setdefault(name, value)
    return params


# -- start and read loop ------------------------------------------------------------------------

async def _start(app: web.Application, conn: Connection, since: int | None, *,
                 admin: bool) -> None:
    """``ready``, the replay, then the live events held meanwhile (writer started)."""
    send = conn.ws.send_frame
    await send(protocol.encode("ready", {"userId": conn.user_id}), WSMsgType.TEXT)
    replayed, floor = NO_IDS, 0
    if since is not None:
        settings = app[SETTINGS]
        replay = await missed_events(
            app[DB], user_id=conn.user_id, since=since, limit=settings.ws_history_limit,
            admin=admin, retention=dt.timedelta(days=settings.outbox_retention_days))
        if replay.refetch is not None:
            await send(protocol.encode(protocol.REFETCH, replay.refetch), WSMsgType.TEXT)
            floor = replay.refetch["lastId"]  # the refetched state already holds these
        for _, frame in replay.frames:
            await send(frame, WSMsgType.TEXT)
        replayed = replay.ids
    if not conn.release(replayed=replayed, floor=floor):
        _too_slow(app, conn)


def _too_slow(app: web.Application, conn: Connection) -> None:
    app[HUB].unregister(conn)
    conn.close_soon(protocol.TOO_SLOW, "too slow")


async def _dispatch(app: web.Application, conn: Connection, raw: str) -> bytes | None:
    try:
        event, data = protocol.parse_frame(raw)
        handler = HANDLERS.get(event)
        if handler is None:
            raise FrameError("Unknown event", "unknown_event")
        return await handler(app, conn, data)
    except FrameError as exc:
        return protocol.error(exc.message, exc.code)
    except DomainError as exc:
        return protocol.error(exc.message, exc.code)
    except Exception:
        log.exception("websocket event failed", extra={"user_id": conn.user_id})
        return protocol.error("Internal error", "internal")


async def _on_ping(app: web.Application, conn: Connection, data: dict[str, Any]) -> bytes:
    return protocol.encode("pong", {})


async def _on_auth(app: web.Application, conn: Connection, data: dict[str, Any]) -> bytes:
    """A fresh token on an open socket pushes its expiry back; answered with ``ready``."""
    claims = _claims(app, data.get("token"))
    if claims is None:
        raise FrameError("Invalid or expired token", "unauthorized")
    if claims.user_id != conn.user_id:
        raise FrameError("Token of another user", "forbidden")
    conn.expires_at = claims.expires_at + app[SETTINGS].ws_token_grace  # the hub's sweep reads it
    return protocol.encode("ready", {"userId": conn.user_id})


HANDLERS: dict[str, EventHandler] = {
    "ping": _on_ping,
    "auth": _on_auth,
    "chat:join": chat.on_join,
    "chat:leave": chat.on_leave,
    "chat:send": chat.on_send,
}
