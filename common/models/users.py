from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, BigId, CreatedAt, Money, UpdatedAt

ROLES = ("user", "admin")
USER_STATUSES = ("active", "suspended", "banned")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are unique whatever their case: the index is on lower(email).
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint(f"role IN {ROLES}", name="role"),
        CheckConstraint(f"status IN {USER_STATUSES}", name="status"),
        CheckConstraint("pending_balance >= 0", name="pending_balance_not_negative"),
        CheckConstraint("referred_by <> id", name="not_own_referrer"),
        # A referrer's referees, newest first (GET /api/referrals/referees).
        Index("ix_users_referred_by_id", "referred_by", "id",
              postgresql_where=text("referred_by IS NOT NULL")),
        # Risk (docs/risk.md): the review queue by score; the sign-ups of one address in a day.
        Index("ix_users_risk_score", "risk_score", "id", postgresql_where=text("risk_score > 0")),
        Index("ix_users_signup_ip_created_at", "signup_ip", "created_at",
              postgresql_where=text("signup_ip IS NOT NULL")),
    )

    id: Mapped[BigId]
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(100))
    avatar: Mapped[str | None] = mapped_column(String(2048))
    role: Mapped[str] = mapped_column(String(16), server_default="user")
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    # Below zero only as a debt: a reversal of a commission already spent (docs/money.md).
    balance: Mapped[Money] = mapped_column(server_default="0")
    pending_balance: Mapped[Money] = mapped_column(server_default="0")
    # Referrals (docs/money.md "Referrals"): the code others sign up with, made by the database's
    # one rule (migration 0012's ``new_referral_code()``: 10 random characters, never derived
    # from the id); the member whose code this user signed up with, set once at sign-up (a
    # trigger refuses any later change); the address the sign-up came from.
    referral_code: Mapped[str] = mapped_column(
        String(16), unique=True, server_default=text("new_referral_code()"))
    referred_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signup_ip: Mapped[str | None] = mapped_column(String(64))
    # Risk (docs/risk.md): the weighted score of the member's signals, kept by migration 0013's
    # trigger as signals are recorded and rebuilt by the beat; signals before ``risk_cleared_at``
    # no longer count; ``risk_flagged`` once admins were told the score reached
    # RISK_REVIEW_SCORE; ``payouts_frozen`` refuses withdrawals (an admin's decision).
    risk_score: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    risk_cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    risk_flagged: Mapped[bool] = mapped_column(server_default=text("false"))
    payouts_frozen: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]


