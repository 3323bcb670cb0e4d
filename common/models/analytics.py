"""Daily analytics rollups (docs/api.md "Admin") and the indexes their live "today" figures use.

A day's row is computed absolutely (never incremented) from the raw rows of that UTC day, so a
refill gives the same row; ``analytics_fill_state`` says up to which day the rows are complete.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, Money
from common.models.ledger import LedgerEntry
from common.models.payments import Payment
from common.models.sales import Sale
from common.models.users import User


class AnalyticsDay(Base):
    """One closed UTC day. Every figure is keyed by when its event happened (creation, approval
    ledger entry, terminal status), so a closed day's figures never change afterwards."""

    __tablename__ = "analytics_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    revenue: Mapped[Money] = mapped_column(server_default="0")
    reversed_amount: Mapped[Money] = mapped_column(server_default="0")
    sales_created: Mapped[int] = mapped_column(Integer, server_default="0")
    sales_approved: Mapped[int] = mapped_column(Integer, server_default="0")
    sales_rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    sales_reversed: Mapped[int] = mapped_column(Integer, server_default="0")
    signups: Mapped[int] = mapped_column(Integer, server_default="0")
    active_users: Mapped[int] = mapped_column(Integer, server_default="0")
    payouts_requested: Mapped[int] = mapped_column(Integer, server_default="0")
    payouts_paid: Mapped[int] = mapped_column(Integer, server_default="0")
    payouts_paid_amount: Mapped[Money] = mapped_column(server_default="0")
    payouts_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    payouts_cancelled: Mapped[int] = mapped_column(Integer, server_default="0")


class AnalyticsOfferDay(Base):
    """One offer's click funnel on one closed UTC day (fill state ``offers``): its clicks, its
    conversions (sales attributed to a click, by the sale's creation) and the commission of those
    sales credited and reversed (by the ledger entry's day). A row exists for an offer and day
    with any of them; every figure is keyed by when its event happened, as in ``analytics_daily``."""

    __tablename__ = "analytics_offer_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), primary_key=True)
    clicks: Mapped[int] = mapped_column(Integer, server_default="0")
    conversions: Mapped[int] = mapped_column(Integer, server_default="0")
    revenue: Mapped[Money] = mapped_column(server_default="0")
    reversed_amount: Mapped[Money] = mapped_column(server_default="0")


class AnalyticsFillState(Base):
    """``filled_through``: the last day whose row is complete (rows after it may be absent)."""

    __tablename__ = "analytics_fill_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    filled_through: Mapped[dt.date] = mapped_column(Date)


# The live "today" figures and a day's fill read one day of raw rows through these.
Index("ix_users_created_at", User.__table__.c.created_at)
Index("ix_users_not_active_status", User.__table__.c.status, postgresql_where=text("status <> 'active'"))
Index("ix_sales_created_at", Sale.__table__.c.created_at)
Index("ix_sales_decided_at", Sale.__table__.c.decided_at,
      postgresql_where=text("status IN ('rejected', 'reversed')"))
Index("ix_ledger_entries_sale_created_at", LedgerEntry.__table__.c.created_at,
      postgresql_where=text("kind IN ('sale_credit', 'sale_reversal')"))
# The dashboard's referral earnings of the last 7 days (read live, not rolled up).
Index("ix_ledger_entries_referral_created_at", LedgerEntry.__table__.c.created_at,
      postgresql_where=text("kind IN ('referral', 'referral_reversal')"))
Index("ix_payments_created_at", Payment.__table__.c.created_at)
Index("ix_payments_pending", Payment.__table__.c.needs_approval,
      postgresql_where=text("status = 'pending'"))

