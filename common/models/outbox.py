from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt

EVENT_TARGETS = ("user", "room", "all")


class OutboxEvent(Base):
    """An event committed with the change that caused it, published to Redis after commit.

    ``id`` is the event id clients see and resume from. It is taken at insert, so events can
    commit and be published out of id order (the resume allows for it).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"target IN {EVENT_TARGETS}", name="target"),
        CheckConstraint("(target = 'all') = (target_id IS NULL)", name="target_id"),
        # The sweep reads only what is left unpublished; the partial index stays tiny.
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_target_target_id_id", "target", "target_id", "id"),
        # A resume replays a user's events published after the client's last one, whatever
        # their id (web/realtime/resume.py).
        Index("ix_outbox_user_published", "target_id", "published_at",
              postgresql_where=text("target = 'user'")),
    )

    id: Mapped[BigId]
    target: Mapped[str] = mapped_column(String(8))
    target_id: Mapped[int | None]
    event: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[CreatedAt]
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
