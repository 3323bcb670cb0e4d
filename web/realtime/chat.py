"""The chat events of a socket: ``chat:join``, ``chat:leave`` and ``chat:send``.

Membership is stored (``chat_members``, counted by ``GET /chat/rooms``); which rooms a socket
receives is the socket's own state, so a client joins again after it reconnects. A message is
stored and its event committed to the outbox before any member sees it (``common.services.chat``);
the hub then delivers it to the room's sockets on every instance, the sender's included.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from limits import RateLimitItem, parse

from common.errors import RateLimited
from common.redis import key
from common.services import chat as service
from web.keys import DB, REDIS, SETTINGS
from web.realtime import protocol
from web.realtime.connection import Connection
from web.realtime.keys import HUB
from web.realtime.protocol import FrameError


def _room_id(data: dict[str, Any]) -> int:
    room_id = data.get("roomId")
    if isinstance(room_id, str) and room_id.isdigit() and len(room_id) <= 18:
        room_id = int(room_id)
    if not isinstance(room_id, int) or isinstance(room_id, bool) or room_id <= 0:
        raise FrameError("'roomId' must be a positive integer", "invalid")
    return room_id


async def on_join(app: web.Application, conn: Connection, data: dict[str, Any]) -> bytes:
    room_id = await app[DB].run(service.join_room, user_id=conn.user_id, room_id=_room_id(data))
    app[HUB].join(conn, room_id)
    return protocol.encode("chat:joined", {"roomId": room_id})


async def on_leave(app: web.Application, conn: Connection, data: dict[str, Any]) -> bytes:
    room_id = _room_id(data)
    if room_id not in conn.rooms:
        raise FrameError("Not in this room", "not_joined")
    app[HUB].leave(conn, room_id)
    await app[DB].run(service.leave_room, user_id=conn.user_id, room_id=room_id)
    return protocol.encode("chat:left", {"roomId": room_id})


async def on_send(app: web.Application, conn: Connection, data: dict[str, Any]) -> bytes | None:
    room_id = _room_id(data)
    if room_id not in conn.rooms:
        raise FrameError("Join the room before sending to it", "not_joined")
    content, kind = service.check_message(
        content=data.get("content"), type=data.get("type", "text")
    )
    await _count_send(app, conn.user_id)
    await app[DB].run(
        service.send_message, user_id=conn.user_id, room_id=room_id, content=content, type=kind
    )
    return None  # the message itself reaches the sender through the room, like every member


@functools.lru_cache(maxsize=8)
def _limit(text: str) -> RateLimitItem:
    return parse(text)


async def _count_send(app: web.Application, user_id: int) -> None:
    """A fixed window per user (``RATE_LIMIT_CHAT``, e.g. "10/10second") that opens with the
    first send, shared by every instance through Redis: INCR, and EXPIRE set by the send that
    created the key."""
    settings = app[SETTINGS]
    item = _limit(settings.rate_limit_chat)
    window = item.get_expiry()
    name = key(settings, "chat-rate", user_id)
    async with app[REDIS].pipeline(transaction=True) as pipe:
        pipe.incr(name)
        pipe.expire(name, window + 1, nx=True)
        count, _ = await pipe.execute()
    if count > item.amount:
        raise RateLimited("Too many messages, slow down", retry_after=window)
