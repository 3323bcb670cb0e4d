"""Real time: ``GET /ws`` and the hub behind it (docs/api.md "WebSocket").

- ``protocol``: frames, close codes, event names;
- ``connection``: one socket's bounded send queue and writer;
- ``hub``: this process's sockets, and the routing of the events channel to them (it follows the
  channel through the process's Redis subscriber, ``web.pubsub``);
- ``seats``: the per-user socket cap, counted across instances in Redis;
- ``resume``: missed user events, read back from the outbox;
- ``chat``: the chat events of a socket;
- ``handler``: the upgrade, authentication and read loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from common.redis import events_channel
from web.keys import HUB, SETTINGS, SUBSCRIBER
from web.realtime import protocol
from web.realtime.handler import websocket
from web.realtime.hub import Hub
from web.realtime.seats import seats_context

__all__ = ["HUB", "setup_realtime"]


def setup_realtime(app: web.Application) -> None:
    app.router.add_get("/ws", websocket)
    app.cleanup_ctx.append(_hub)
    app.cleanup_ctx.append(seats_context)
    app.on_shutdown.append(_close_sockets)


async def _hub(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (between the subscriber's creation and its start, web.app)."""
    settings = app[SETTINGS]
    hub = Hub(app[SUBSCRIBER], events_channel(settings),
              max_per_user=settings.ws_max_sockets_per_user, heartbeat=settings.ws_heartbeat)
    app[HUB] = hub
    hub.start()
    yield
    await hub.close_all(protocol.GOING_AWAY, protocol.SHUTDOWN_HINT)
    await hub.stop()


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all(protocol.GOING_AWAY, protocol.SHUTDOWN_HINT)
