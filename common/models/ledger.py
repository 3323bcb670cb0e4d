from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt, Money

LEDGER_KINDS = ("sale_credit", "sale_reversal", "payout_hold", "payout_release", "adjustment", "prize",
                "referral", "referral_reversal")


class LedgerEntry(Base):
    """One change to a user's balance. Append-only: a trigger (migration 0003) refuses UPDATE and
    DELETE. ``idempotency_key`` names the cause (``sale_credit:42``) so one cause posts once."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(f"kind IN {LEDGER_KINDS}", name="kind"),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_user_id_id", "user_id", "id"),
    )

    id: Mapped[BigId]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    amount: Mapped[Money]
    kind: Mapped[str] = mapped_column(String(32))
    reference_type: Mapped[str | None] = mapped_column(String(32))
    reference_id: Mapped[int | None]
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[CreatedAt]
