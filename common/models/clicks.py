from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ARRAY, CheckConstraint, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt

CLAIM_STATUSES = ("open", "approved", "rejected")
# ``secrets.token_urlsafe(16)``: 128 random bits in 22 URL-safe characters.
PUBLIC_ID_LENGTH = 22


class Click(Base):
    """A member starting an offer through us. ``public_id`` is the id the network sees and sends
    back (random, never a sequence); ``id`` orders and batches rows internally. Purged after
    ``CLICK_RETENTION_DAYS`` unless a sale or a claim names it."""

    __tablename__ = "clicks"
    __table_args__ = (
        Index("ix_clicks_user_id_id", "user_id", "id"),
        Index("ix_clicks_created_at", "created_at"),
    )

    id: Mapped[BigId]
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[CreatedAt]


class ClickWindow(Base):
    """A member's click rate limit (``RATE_LIMIT_CLICK``): the stamps of their latest clicks,
    newest first, at most the limit's amount of them. The click statement updates this row in
    the same statement that stores the click, so the limit costs no round trip of its own and is
    exact across web instances: concurrent clicks of one member queue on this row, and each sees
    the stamps the one before it committed (docs/money.md "Clicks")."""

    __tablename__ = "click_windows"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    stamps: Mapped[list[dt.datetime]] = mapped_column(ARRAY(DateTime(timezone=True)))


class Claim(Base):
    """A member's missing-credit claim on a click: one per click (the unique key makes a second
    one a 409 however the requests race). The user and offer are copied from the click, so the
    claim says what it is about on its own."""

    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint(f"status IN {CLAIM_STATUSES}", name="status"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount_not_negative"),
        Index("ix_claims_user_id_id", "user_id", "id"),
        Index("ix_claims_status_id", "status", "id"),
    )

    id: Mapped[BigId]
    click_id: Mapped[str] = mapped_column(ForeignKey("clicks.public_id"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    message: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal | None]
    resolution: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[CreatedAt]
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
