from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt

MESSAGE_TYPES = ("text", "image", "file")
MAX_CONTENT_CHARS = 2000
# The room migration 0004 seeds; every signed-in user may join it.
DEFAULT_ROOM_NAME = "General"


class ChatRoom(Base):
    __tablename__ = "chat_rooms"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[BigId]
    name: Mapped[str] = mapped_column(String(100))
    # Public rooms are open to every signed-in user; others only to their members.
    is_public: Mapped[bool] = mapped_column(server_default=text("true"))
    # Kept on the room (set in the transaction that stores a message) so the room list is one scan.
    last_message_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[CreatedAt]


class ChatMember(Base):
    """A user who joined a room (``chat:join``) and has not left it."""

    __tablename__ = "chat_members"
    __table_args__ = (Index("ix_chat_members_user_id", "user_id"),)

    room_id: Mapped[int] = mapped_column(
        ForeignKey("chat_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[CreatedAt]


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint(f"type IN {MESSAGE_TYPES}", name="type"),
        CheckConstraint(
            f"char_length(content) BETWEEN 1 AND {MAX_CONTENT_CHARS}", name="content_length"
        ),
        # History pages walk a room's messages by id, newest first.
        Index("ix_chat_messages_room_id_id", "room_id", "id"),
    )

    id: Mapped[BigId]
    room_id: Mapped[int] = mapped_column(ForeignKey("chat_rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(8), server_default="text")
    created_at: Mapped[CreatedAt]
