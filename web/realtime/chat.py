"""The chat events of a socket: ``chat:join``, ``chat:leave`` and ``chat:send``.

Membership is stored (``chat_members``, counted by ``GET /chat/rooms``); which rooms a socket
receives is the socket's own state, so a client joins again after it reconnects. A message is
stored and its event committed to the outbox before any member sees it (``common.services.chat``);
the hub then delivers it to the room's sockets on every instance, the sender's included.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from common.errors import NotFound
from common.services import chat as service
from web.ids import MAX_ID, parse_id
from web.keys import DB, HUB, LIMITER, SETTINGS
from web.realtime import protocol
from web.realtime.connection import Connection
from web.realtime.protocol import FrameError


def _room_id(data: dict[str, Any]) -> int:
    """A room id as a JSON number or as the path's id text (``parse_id``), within BIGINT."""
    room_id = data.get("roomId")
    if isinstance(room_id, str):
        try:
            return parse_id(room_id, "Room")
        except NotFound:
            raise FrameError("'roomId' must be a positive integer", "invalid") from None
    if not isinstance(room_id, int) or isinstance(room_id, bool) or not 0 < room_id <= MAX_ID:
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
    # RATE_LIMIT_CHAT per user across instances; RateLimited answers error "rate_limited".
    await app[LIMITER].hit("chat:send", app[SETTINGS].rate_limit_chat, conn.user_id)
    await app[DB].run(
        service.send_message, user_id=conn.user_id, room_id=room_id, content=content, type=kind
    )
    return None  # the message itself reaches the sender through the room, like every member

