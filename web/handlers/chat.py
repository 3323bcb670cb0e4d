"""Chat over REST (docs/api.md "Operations"): the rooms a user can see, and a room's history.

Sending, joining and leaving happen on the WebSocket (``web.realtime.chat``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, exists, func, or_, select

from common.errors import NotFound
from common.models.chat import ChatMember, ChatMessage, ChatRoom
from common.models.users import User
from common.services.chat import message_data
from common.sql import compile_query
from web.auth import current_user, require_user
from web.envelope import iso, ok
from web.ids import MAX_ID, path_id
from web.keys import DB
from web.openapi import describe
from web.schemas import Model
from web.validation import parse_query

_r, _m = ChatRoom.__table__, ChatMessage.__table__


def _visible_to_user() -> Any:
    membership = exists().where(
        ChatMember.room_id == _r.c.id, ChatMember.user_id == bindparam("user_id")
    )
    return or_(_r.c.is_public, membership)


_members = (
    select(func.count()).where(ChatMember.room_id == _r.c.id).scalar_subquery().label("members")
)
_ROOMS = compile_query(
    select(_r.c.id, _r.c.name, _r.c.last_message_at, _members)
    .where(_visible_to_user())
    .order_by(_r.c.id)
)
_ROOM = compile_query(select(_r.c.id).where(_r.c.id == bindparam("room_id"), _visible_to_user()))
_HISTORY = compile_query(
    select(_m.c.id, _m.c.room_id, _m.c.user_id, _m.c.content, _m.c.type, _m.c.created_at,
           User.name, User.avatar)
    .join(User, User.id == _m.c.user_id)
    .where(_m.c.room_id == bindparam("room_id"), _m.c.id < bindparam("before"))
    .order_by(_m.c.id.desc())
    .limit(bindparam("limit"))
)


class RoomOut(BaseModel):
    id: int
    name: str
    members: int
    lastMessageAt: dt.datetime | None


class MessageAuthor(BaseModel):
    name: str
    avatar: str | None


class MessageOut(BaseModel):
    """``common.services.chat.message_data``: history rows and ``chat:message`` events alike."""

    id: int
    roomId: int
    userId: int
    content: str
    type: Literal["text", "image", "file"]
    timestamp: dt.datetime
    user: MessageAuthor


class RoomPath(BaseModel):
    roomId: int = Field(ge=1, le=MAX_ID)


class HistoryQuery(Model):
    before: int = Field(MAX_ID, ge=1, le=MAX_ID)
    limit: int = Field(50, ge=1, le=100)


@describe("The chat rooms the user can see", tags=["chat"], response=RoomOut, list=True)
@require_user
async def list_rooms(request: web.Request) -> web.Response:
    rows = await request.app[DB].fetch_all(_ROOMS, {"user_id": current_user(request).user_id})
    return ok([
        {"id": r["id"], "name": r["name"], "members": r["members"],
         "lastMessageAt": iso(r["last_message_at"]) if r["last_message_at"] else None}
        for r in rows
    ])


@describe("A page of a room's history before a message id, oldest first", tags=["chat"],
          path=RoomPath, query=HistoryQuery, response=MessageOut, list=True, paginated=False,
          statuses={404: "No such room, or not one the user can see"})
@require_user
async def room_messages(request: web.Request) -> web.Response:
    """A page of a room's messages before ``before`` (a message id), oldest first."""
    query = parse_query(request, HistoryQuery)
    room_id = path_id(request, "Room", "roomId")
    db, user_id = request.app[DB], current_user(request).user_id
    if await db.fetch_one(_ROOM, {"room_id": room_id, "user_id": user_id}) is None:
        raise NotFound("Room not found")
    rows = await db.fetch_all(
        _HISTORY, {"room_id": room_id, "before": query.before, "limit": query.limit}
    )
    return ok([
        message_data(
            id=r["id"], room_id=r["room_id"], user_id=r["user_id"], content=r["content"],
            type=r["type"], created_at=r["created_at"], name=r["name"], avatar=r["avatar"],
        )
        for r in reversed(rows)
    ])


ROUTES = [
    ("GET", "/chat/rooms", list_rooms),
    ("GET", "/chat/rooms/{roomId}/messages", room_messages),
]
