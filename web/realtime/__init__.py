"""Real time: ``GET /ws`` and the hub behind it (API.md section 8, docs/api.md "WebSocket").

- ``protocol``: frames, close codes, event names;
- ``connection``: one socket's bounded send queue and writer;
- ``hub``: this process's sockets and the Redis subscriber that routes events to them;
- ``resume``: missed user events, read back from the outbox;
- ``chat``: the chat events of a socket;
- ``handler``: the upgrade, authentication and read loop.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import redis.asyncio as aredis
from aiohttp import web

from common.redis import events_channel
from web.keys import SETTINGS
from web.realtime import protocol
from web.realtime.handler import websocket
from web.realtime.hub import Hub
from web.realtime.keys import HUB

__all__ = ["HUB", "setup_realtime"]


def setup_realtime(app: web.Application) -> None:
    app.router.add_get("/ws", websocket)
    app.cleanup_ctx.append(_hub)
    app.on_shutdown.append(_close_sockets)


async def _hub(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = aredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        health_check_interval=15,
        # Named so that operators (and the tests) can tell the hub's subscriber apart.
        client_name=f"{settings.redis_prefix}:ws-hub:{os.getpid()}:{id(app):x}",
    )
    hub = Hub(client, events_channel(settings), max_per_user=settings.ws_max_sockets_per_user)
    app[HUB] = hub
    hub.start()
    yield
    await hub.close_all(protocol.GOING_AWAY, "server shutting down")
    await hub.stop()


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all(protocol.GOING_AWAY, "server shutting down")
