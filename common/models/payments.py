from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt, Money, UpdatedAt

PAYMENT_METHODS = ("paypal", "crypto", "giftcard")
PAYMENT_STATUSES = ("pending", "processing", "paid", "failed", "cancelled")
# The longest ``Idempotency-Key`` a client may send (the column holds it; web/idempotency.py
# refuses longer ones with 400).
IDEMPOTENCY_KEY_MAX_LENGTH = 255


class Payment(Base):
    """A withdrawal (``UserPayment``). Its amount is held (ledger ``payout_hold``) at acceptance."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"method IN {PAYMENT_METHODS}", name="method"),
        CheckConstraint(f"status IN {PAYMENT_STATUSES}", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_payments_user_id_id", "user_id", "id"),
        # The recovery sweep looks for payments in processing whose lease expired.
        Index("ix_payments_processing_lease", "lease_until",
              postgresql_where=text("status = 'processing'")),
        # shared_payout_destination (docs/risk.md) finds a destination across members, folded.
        Index("ix_payments_destination_folded", text("lower(btrim(destination))")),
    )

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    amount: Mapped[Money]
    method: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    needs_approval: Mapped[bool] = mapped_column(server_default=text("false"))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Held for a risk review (docs/risk.md): the member's score was at least RISK_REVIEW_SCORE
    # at acceptance, so ``needs_approval`` was set too and only an admin's approval lets the
    # payout worker take it. Kept after the decision as the record of why it waited.
    needs_review: Mapped[bool] = mapped_column(server_default=text("false"))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    # The payout lease (docs/money.md "Payouts"): the chain holding ``lease_token`` is the only
    # one that may act on the payment; another takes over only after ``lease_until``.
    lease_token: Mapped[int] = mapped_column(BigInteger, server_default="0")
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # When the recovery sweep last enqueued it, so a backlog is not enqueued again every minute.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` for one user: the body's hash and the first answer.
    The row is inserted in the transaction of the work it guards, so the two commit together and
    concurrent requests meet on its unique constraint. Its ``id`` names the executed request."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX_LENGTH))
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[CreatedAt]


class SandboxPayout(Base):
    """The sandbox payout provider's own books (as a real provider keeps its own): one row per
    idempotency key, so a replay after a crash returns the first result and never pays twice."""

    __tablename__ = "sandbox_payouts"

    idempotency_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount: Mapped[Money]
    destination: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[CreatedAt]
