"""Fixtures for the WebSocket tests: live apps on the real pools (data commits), users with
tokens, events emitted through the outbox, and small helpers to read a socket with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine

from common.config import Settings
from common.events import emit
from common.security.tokens import issue_access_token
from common.uow import SyncContext
from tests.fixtures import factories
from web.realtime import HUB

DEADLINE = 10.0


@dataclass(frozen=True)
class Someone:
    id: int
    token: str
    name: str


@pytest.fixture
def ws_settings(settings: Settings) -> Settings:
    """Short timeouts and small bounds, so the tests reach every limit quickly."""
    return settings.model_copy(update={
        "ws_auth_timeout": 0.5,
        "ws_token_grace": 0.2,
        "ws_history_limit": 20,
        "ws_max_sockets_per_user": 3,
        "ws_max_frame_bytes": 16_384,
    })


@pytest.fixture
def sync_ctx(settings: Settings, committed: Engine) -> Iterator[SyncContext]:
    ctx = SyncContext.create(settings, pool_size=2)
    yield ctx
    ctx.close()


@pytest.fixture
def someone(sync_ctx: SyncContext, settings: Settings) -> Callable[..., Someone]:
    """A committed user and a valid access token for it."""

    def make(**fields: Any) -> Someone:
        with sync_ctx.transaction() as session:
            user = factories.make_user(session, **fields)
        token = issue_access_token(settings, user_id=user.id, email=user.email, role=user.role)
        return Someone(user.id, token, user.name)

    return make


@pytest.fixture
def publish(sync_ctx: SyncContext) -> Callable[..., int]:
    """Emit one event through the outbox (commit, then publish) as a worker would; its id."""

    def send(event: str, data: dict[str, Any], **target: int) -> int:
        with sync_ctx.transaction() as session:
            return emit(session, event=event, data=data, **target).id

    return send


@pytest.fixture
async def start_app(aiohttp_client, committed: Engine) -> Callable[[Settings], Awaitable[TestClient]]:  # type: ignore[no-untyped-def]
    """A web app on the real pools, its hub subscribed to Redis."""
    from web.app import create_app

    async def start(settings: Settings) -> TestClient:
        client = await aiohttp_client(create_app(settings))
        await asyncio.wait_for(client.app[HUB].subscribed.wait(), DEADLINE)
        return client

    return start


@pytest.fixture
async def app_client(start_app, ws_settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    yield await start_app(ws_settings)


async def next_frame(ws: ClientWebSocketResponse, timeout: float = DEADLINE) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return orjson.loads(msg.data)


async def wait_for_event(ws: ClientWebSocketResponse, event: str,
                         timeout: float = DEADLINE) -> dict[str, Any]:
    """The next frame of that event, skipping others."""
    end = time.monotonic() + timeout
    while True:
        frame = await next_frame(ws, max(0.01, end - time.monotonic()))
        if frame["event"] == event:
            return frame


async def close_code(ws: ClientWebSocketResponse, timeout: float = DEADLINE) -> int | None:
    """Read until the server closes the socket; its close code."""
    end = time.monotonic() + timeout
    while not ws.closed:
        msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            break
    return ws.close_code


async def connect(client: TestClient, who: Someone, **query: str) -> ClientWebSocketResponse:
    """A socket authenticated with ``?token=``, its ``ready`` frame already read."""
    ws = await client.ws_connect("/ws", params={"token": who.token, **query})
    ready = await next_frame(ws)
    assert ready == {"event": "ready", "data": {"userId": who.id}}
    return ws


async def eventually(check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Poll ``check`` until it holds, or fail at the deadline."""
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.02)
