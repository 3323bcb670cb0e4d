from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt


class RiskSignal(Base):
    """A fact that says something about a user's risk (docs/api.md "Admin"), recorded where it
    happens: ``kind`` names it (``referral_abuse``, ...), ``detail`` what was seen. A signal with
    an ``idempotency_key`` (its cause, e.g. ``referral_abuse:<referee>:<user>``) is recorded once
    however often the cause is seen; one without is recorded each time. Rows are never updated."""

    __tablename__ = "risk_signals"
    __table_args__ = (Index("ix_risk_signals_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    # What it added to the member's score when recorded (RISK_WEIGHTS then; migration 0013's
    # trigger adds it); the beat's rebuild weighs with today's RISK_WEIGHTS.
    weight: Mapped[Decimal] = mapped_column(Numeric(10, 2), server_default="0")
    created_at: Mapped[CreatedAt]
