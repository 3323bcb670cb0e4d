from __future__ import annotations

from decimal import Decimal

from sqlalchemy import CheckConstraint, Index, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt, Money, UpdatedAt

OFFER_STATUSES = ("pending", "active", "rejected", "paused")
PAYOUT_TYPES = ("share", "fixed")


class Offer(Base):
    """An offer of a network. The user's commission follows ``payout_type`` (docs/money.md):
    ``share`` = ``user_share`` of what the network pays, ``fixed`` = ``fixed_payout``.
    ``payout`` is what the catalogue shows (the commission at ``network_payout``)."""

    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint(f"status IN {OFFER_STATUSES}", name="status"),
        CheckConstraint(f"payout_type IN {PAYOUT_TYPES}", name="payout_type"),
        CheckConstraint("user_share >= 0 AND user_share <= 1", name="user_share_fraction"),
        CheckConstraint("payout_type <> 'fixed' OR fixed_payout IS NOT NULL", name="fixed_has_amount"),
        CheckConstraint("payout >= 0 AND network_payout >= 0", name="payout_not_negative"),
        UniqueConstraint("network", "external_id"),
        # The catalogue: active offers, newest first, optionally one category.
        Index("ix_offers_active_category_id", "category", "id", postgresql_where=text("status = 'active'")),
        Index("ix_offers_active_id", "id", postgresql_where=text("status = 'active'")),
    )

    id: Mapped[BigId]
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    category: Mapped[str] = mapped_column(String(64))
    network: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    payout_type: Mapped[str] = mapped_column(String(8), server_default="share")
    user_share: Mapped[Decimal] = mapped_column(Numeric(5, 4), server_default="0.7")
    fixed_payout: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    network_payout: Mapped[Money] = mapped_column(server_default="0")
    payout: Mapped[Money] = mapped_column(server_default="0")
    # Why an admin rejected it (kept for the offer's network contact and the audit).
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    # The network's https URL a click sends the member to, with ``{clickId}`` (and optionally
    # ``{userId}``) filled in; admins only (common/services/clicks.py checks it).
    tracking_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
