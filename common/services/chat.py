"""Chat rooms: joining, leaving, and messages that are stored before they are broadcast.

A message is inserted and its ``chat:message`` event written to the outbox in the caller's
transaction, so a message every member sees is always in the history, and one that failed to
store is never seen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from common.errors import InvalidInput, NotFound
from common.events import emit
from common.models.chat import MAX_CONTENT_CHARS, MESSAGE_TYPES, ChatMember, ChatMessage, ChatRoom
from common.models.users import User


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_message(*, content: object, type: object) -> tuple[str, str]:
    """Validate a message's content (1..2000 characters) and type; returns them."""
    errors = []
    if not isinstance(content, str) or not 1 <= len(content) <= MAX_CONTENT_CHARS:
        errors.append(f"content: must be 1 to {MAX_CONTENT_CHARS} characters")
    if type not in MESSAGE_TYPES:
        errors.append(f"type: must be one of {', '.join(MESSAGE_TYPES)}")
    if errors:
        raise InvalidInput("Invalid message", errors=errors)
    return content, type  # type: ignore[return-value]


def _visible_room(session: Session, *, user_id: int, room_id: int) -> ChatRoom:
    """The room if the user may see it (public, or a member); NotFound otherwise."""
    member = exists().where(ChatMember.room_id == room_id, ChatMember.user_id == user_id)
    room = session.scalars(
        select(ChatRoom).where(ChatRoom.id == room_id, ChatRoom.is_public | member)
    ).one_or_none()
    if room is None:
        raise NotFound("Room not found")
    return room


def join_room(session: Session, *, user_id: int, room_id: int) -> int:
    """Make the user a member of a room it may see; joining twice is a no-op."""
    room = _visible_room(session, user_id=user_id, room_id=room_id)
    session.execute(
        pg_insert(ChatMember)
        .values(room_id=room.id, user_id=user_id)
        .on_conflict_do_nothing(index_elements=["room_id", "user_id"])
    )
    return room.id


def leave_room(session: Session, *, user_id: int, room_id: int) -> None:
    session.execute(
        delete(ChatMember).where(ChatMember.room_id == room_id, ChatMember.user_id == user_id)
    )


def send_message(
    session: Session, *, user_id: int, room_id: int, content: object, type: object
) -> dict[str, Any]:
    """Store a message of a room member and emit ``chat:message`` to the room; returns its data.

    Raises NotFound when the user is not a member of the room.
    """
    content, type = check_message(content=content, type=type)
    is_member = session.scalar(
        select(exists().where(ChatMember.room_id == room_id, ChatMember.user_id == user_id))
    )
    if not is_member:
        raise NotFound("Room not found or not joined")
    row = session.execute(
        insert(ChatMessage)
        .values(room_id=room_id, user_id=user_id, content=content, type=type)
        .returning(ChatMessage.id, ChatMessage.created_at)
    ).one()
    session.execute(
        update(ChatRoom)
        .where(ChatRoom.id == room_id)
        # GREATEST skips NULL; concurrent senders never move the time backwards.
        .values(last_message_at=func.greatest(ChatRoom.last_message_at, row.created_at))
    )
    author = session.execute(select(User.name, User.avatar).where(User.id == user_id)).one()
    data = message_data(
        id=row.id, room_id=room_id, user_id=user_id, content=content, type=type,
        created_at=row.created_at, name=author.name, avatar=author.avatar,
    )
    emit(session, event="chat:message", data=data, room_id=room_id)
    return data


def message_data(
    *, id: int, room_id: int, user_id: int, content: str, type: str, created_at: dt.datetime,
    name: str, avatar: str | None,
) -> dict[str, Any]:
    """The message shape of docs/api.md "WebSocket" (event data and history rows alike)."""
    return {
        "id": id,
        "roomId": room_id,
        "userId": user_id,
        "content": content,
        "type": type,
        "timestamp": _iso(created_at),
        "user": {"name": name, "avatar": avatar},
    }
