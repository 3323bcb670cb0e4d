"""``GET /ws`` as a request: the trace id, the envelope of a refusal before the upgrade, metrics and
the access log, as every route has them, while an idle socket keeps no middleware frame."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from types import CoroutineType
from typing import Any

import pytest

from common.tracing import current_trace_id
from tests.web.realtime.conftest import connect, eventually
from web.metrics import REQUESTS
from web.realtime import HUB

TRACE = "ws-trace-0123456789"
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


class _Lines(logging.Handler):
    """Access log records with the trace id current when each was written."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[logging.LogRecord, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record, current_trace_id()))


@pytest.fixture
def access_lines() -> Iterator[_Lines]:
    logger = logging.getLogger("savebucks.access")
    lines, level = _Lines(), logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


def _awaited(coro: Any) -> Iterator[str]:
    """The qualified names of a coroutine and of every coroutine it awaits, outermost first."""
    while isinstance(coro, CoroutineType):
        yield f"{coro.cr_code.co_filename}:{coro.cr_code.co_qualname}"
        coro = coro.cr_await


async def test_an_idle_socket_keeps_no_middleware_frame(app_client, someone) -> None:
    """Each coroutine frame around the read loop is held for the socket's whole life."""
    me = someone()
    ws = await connect(app_client, me)
    chains = [list(_awaited(task.get_coro())) for task in asyncio.all_tasks()]
    served = [chain for chain in chains if any(n.endswith("realtime/handler.py:websocket") for n in chain)]
    assert len(served) == 1, chains
    assert not [name for name in served[0] if "web/middlewares.py" in name], served[0]
    await ws.close()


async def test_a_refusal_before_the_upgrade_is_an_answer_like_any_other(app_client, someone) -> None:
    me = someone()
    resp = await app_client.get("/ws", params={"token": me.token}, headers={
        **UPGRADE, "Origin": "https://evil.example", "X-Trace-ID": TRACE})
    assert resp.status == 403
    body = await resp.json()
    assert (body["success"], body["message"], body["code"]) == (False, "Origin not allowed", "forbidden")
    assert resp.headers["X-Trace-ID"] == TRACE
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "Access-Control-Allow-Origin" not in resp.headers
    # Not an upgrade at all.
    resp = await app_client.get("/ws")
    assert resp.status == 400
    assert (await resp.json())["success"] is False
    assert len(resp.headers["X-Trace-ID"]) == 32


async def test_a_socket_is_counted_and_logged_once_it_ends_without_its_token(
        app_client, someone, access_lines: _Lines) -> None:
    me = someone()
    key = ("GET", "/ws", "101")
    before = REQUESTS.requests.get(key, 0)
    ws = await app_client.ws_connect("/ws", params={"token": me.token},
                                     headers={"X-Trace-ID": TRACE})
    assert (await ws.receive_json(timeout=5))["event"] == "ready"
    assert not [r for r, _ in access_lines.lines if r.__dict__.get("path") == "/ws"]
    await ws.close()
    await eventually(lambda: not app_client.app[HUB].users.get(me.id))
    await eventually(lambda: bool([r for r, _ in access_lines.lines if r.__dict__.get("path") == "/ws"]))
    [(record, trace)] = [(r, t) for r, t in access_lines.lines if r.__dict__.get("path") == "/ws"]
    fields = record.__dict__
    assert (fields["method"], fields["status"], fields["ip"]) == ("GET", 101, "127.0.0.1")
    assert trace == TRACE
    assert me.token not in str(fields) and me.token not in record.getMessage()
    assert REQUESTS.requests[key] == before + 1


async def test_the_sockets_access_line_has_the_fields_of_any_other(
        app_client, someone, access_lines: _Lines) -> None:
    """Written by the socket's handler, not by the middleware: the same line all the same."""
    standard = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
    me = someone()
    assert (await app_client.get("/health")).status in (200, 503)
    ws = await connect(app_client, me)
    await ws.close()
    await eventually(lambda: len(access_lines.lines) >= 2)
    lines = {r.__dict__["path"]: r for r, _ in access_lines.lines}
    fields = {path: set(r.__dict__) - standard for path, r in lines.items()}
    assert fields["/ws"] == fields["/health"] == {"method", "path", "status", "ms", "ip"}
    assert lines["/ws"].getMessage() == lines["/health"].getMessage()


def test_a_decorator_over_holds_connection_stops_start_up() -> None:
    """``functools.wraps`` copies the mark onto a decorator put over it, and ``held_connections``
    would call the inner function: the decorator (a guard, say) and api_middleware skipped."""
    import functools

    from aiohttp import web

    from common.errors import Forbidden
    from web.middlewares import MIDDLEWARES, check_held_routes, holds_connection

    @holds_connection
    async def inner(request: web.Request) -> web.Response:
        return web.Response(text="inner reached")

    @functools.wraps(inner)
    async def guarded(request: web.Request) -> web.Response:
        raise Forbidden("no")

    app = web.Application(middlewares=MIDDLEWARES)
    app.router.add_get("/fine", inner)
    check_held_routes(app)
    app.router.add_get("/x", guarded)
    with pytest.raises(RuntimeError, match="outermost decorator"):
        check_held_routes(app)


async def test_an_outage_after_the_upgrade_closes_the_socket_with_1013(app_client, someone, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Once upgraded, a 503 envelope would be HTTP bytes inside a WebSocket: the socket is closed
    with 1013 (try again later) instead, and nothing of it stays registered."""
    from psycopg_pool import PoolTimeout

    from web.realtime import handler

    async def down(*args: Any) -> None:
        raise PoolTimeout("no connection")

    monkeypatch.setattr(handler, "_account_refusal", down)
    me = someone()
    ws = await app_client.ws_connect("/ws", params={"token": me.token})
    msg = await ws.receive(timeout=5)
    assert msg.type.name == "CLOSE" and msg.data == 1013, msg
    hub = app_client.app[HUB]
    await eventually(lambda: not hub.pending)
