from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt, Money

SALE_STATUSES = ("pending", "approved", "rejected", "reversed")


class Sale(Base):
    """One completed offer (``UserOfferSale``). (network, external_id) is the network's
    transaction id: unique, so a repeated postback can never make a second sale. ``click_id``
    (the click the network named, or the claim's click) is unique too: a click converts once, so
    a claim's credit and a network's credit for one click can never both exist. ``claim_id``
    names the approved claim that made the sale."""

    __tablename__ = "sales"
    __table_args__ = (
        CheckConstraint(f"status IN {SALE_STATUSES}", name="status"),
        CheckConstraint("sale_amount >= 0 AND commission_amount >= 0", name="amounts_not_negative"),
        UniqueConstraint("network", "external_id"),
        Index("ix_sales_user_id_id", "user_id", "id"),
        # A member's sales of one offer since a time: the claim rule (has the offer converted
        # since the click?) and the claim's sale a late report of the offer is the conversion of.
        Index("ix_sales_user_id_offer_id_created_at", "user_id", "offer_id", "created_at"),
        # The beat's approval batch reads only pending sales whose hold has passed.
        Index("ix_sales_pending_hold_until", "hold_until", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    network: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    sale_amount: Mapped[Money]
    commission_amount: Mapped[Money]
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    hold_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[CreatedAt]
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    click_id: Mapped[str | None] = mapped_column(ForeignKey("clicks.public_id"), unique=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), unique=True)


class PostbackLog(Base):
    """Every callback as received, with the verdict on it and what it did (support, replays).

    ``params`` keeps the signature: a replay checks it again with today's secret. The admin
    search (``common/services/postback_log.py``) never shows it. ``txn_id`` and ``user_id`` are
    what the network's parameters name (each adapter knows its names), kept even when the callback
    was refused, so that support finds a callback by either."""

    __tablename__ = "postback_log"
    __table_args__ = (
        Index("ix_postback_log_network_id", "network", "id"),
        Index("ix_postback_log_created_at", "created_at"),
        # The admin search, newest first (created_at, id) under each filter.
        Index("ix_postback_log_txn_id", "txn_id"),
        Index("ix_postback_log_user_id_created_at", "user_id", "created_at", "id"),
        Index("ix_postback_log_network_outcome_created_at",
              "network", "outcome", "created_at", "id"),
        # A refused callback has no outcome; its verdict is what the search's ``outcome`` matches.
        Index("ix_postback_log_network_refused_created_at",
              "network", "verdict", "created_at", "id", postgresql_where=text("verdict <> 'accepted'")),
    )

    id: Mapped[BigId]
    network: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    ip: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(64))
    sale_id: Mapped[int | None]
    trace_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[CreatedAt]
    txn_id: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[int | None]
    # The row a replay checked again (``POST /api/admin/postbacks/{id}/replay``); null otherwise.
    replay_of: Mapped[int | None]
