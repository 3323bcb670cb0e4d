"""Response models of the admin routes (docs/api.md "Admin"): each admin shape extends the public one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from common.risk_rules import KINDS as RISK_KINDS
from common.services.offers import OfferOut
from common.services.payments import PaymentOut
from common.wire import Shape
from web.handlers.auth import UserProfile
from web.money_schemas import ClaimOut, SaleOut


class AdminUserOut(UserProfile):
    """The public profile plus when the row last changed."""

    updatedAt: dt.datetime


class KindTotal(Shape):
    entries: int
    total: Decimal


class LedgerSummary(Shape):
    total: Decimal = Field(description="sum of the user's ledger (equals balance)")
    byKind: dict[str, KindTotal]


class SalesTotal(Shape):
    count: int
    commission: Decimal


class ReferrerOut(Shape):
    id: int
    email: str
    name: str


class AdminReferralOut(Shape):
    referrer: ReferrerOut | None = Field(description="the member whose code this user signed "
                                         "up with")
    referees: int = Field(description="members who signed up with this user's code")
    earnings: Decimal = Field(description="referral earnings, net of reversals")


class RiskSignalOut(Shape):
    """A recorded risk signal (docs/risk.md)."""

    id: int
    kind: Literal[RISK_KINDS] = Field(description="what was seen (docs/risk.md)")  # type: ignore[valid-type]
    detail: dict[str, Any] = Field(description="the facts: addresses, ids, counts")
    weight: Decimal = Field(description="what it added to the score when recorded")
    counts: bool = Field(description="false once an admin cleared the member after it")
    createdAt: dt.datetime


class RiskOut(Shape):
    score: Decimal = Field(description="weighted sum of the signals that count (docs/risk.md)")
    signals: list[RiskSignalOut] = Field(description="the newest signals, newest first")


class RiskUserOut(Shape):
    """A member in the risk review queue."""

    userId: int
    email: str
    name: str
    status: Literal["active", "suspended", "banned"]
    score: Decimal
    payoutsFrozen: bool
    signals: list[RiskSignalOut] = Field(description="the newest signals, newest first")


class PayoutsFrozenOut(Shape):
    userId: int
    payoutsFrozen: bool
    reason: str


class AdminUserDetail(AdminUserOut):
    ledger: LedgerSummary
    sales: dict[str, SalesTotal] = Field(description="by sale status")
    debt: Decimal = Field(description="what a reversal of spent money left owing (0 when the "
                          "balance is not negative); later credits pay it back first")
    referral: AdminReferralOut
    risk: RiskOut


class LedgerEntryOut(Shape):
    id: int
    amount: Decimal = Field(description="signed: a credit is positive, a debit negative")
    kind: str
    referenceType: str | None = Field(description="what caused it (sale, payment, ...)")
    referenceId: int | None
    createdAt: dt.datetime


class AdjustmentOut(BaseModel):
    userId: int
    amount: Decimal
    balance: Decimal
    reason: str
    entryId: int = Field(description="the ledger entry this adjustment posted")


class AdminOfferOut(OfferOut):
    externalId: str
    payoutType: Literal["share", "fixed"]
    userShare: Decimal
    fixedPayout: Decimal | None
    networkPayout: Decimal
    rejectionReason: str | None
    trackingUrl: str | None = Field(description="with {clickId} / {userId}; admins only")
    updatedAt: dt.datetime


class AdminSaleOut(SaleOut):
    network: str
    holdUntil: dt.datetime


class SaleDecisionOut(BaseModel):
    saleId: int
    # "rejected" at once for a rejection; "pending" for an approval until a worker credits it.
    status: Literal["pending", "rejected"]
    queued: Literal["approve", "reject"]


class AdminPaymentOut(PaymentOut):
    userId: int
    needsApproval: bool
    approvedAt: dt.datetime | None


class DashboardStats(BaseModel):
    total_users: int
    active_users: int
    total_offers: int
    total_revenue: Decimal
    pending_payments: Decimal
    risky_withdrawals: int = Field(description="pending withdrawals held for a risk review "
                                   "(docs/risk.md), awaiting an admin's decision")


class RecentActivity(BaseModel):
    new_users: int
    recent_sales: int
    recent_clicks: int = Field(description="offer clicks today and on the 6 days before")
    pending_approvals: int
    referral_earnings: Decimal = Field(description="referral earnings posted in the last 7 days, "
                                       "net of their reversals")


class DashboardOut(BaseModel):
    stats: DashboardStats
    recent_activity: RecentActivity


class RevenueDay(BaseModel):
    date: dt.date
    revenue: Decimal


class UsersDay(BaseModel):
    date: dt.date
    signups: int
    active: int


class UserTotals(BaseModel):
    users: int
    byStatus: dict[str, int]


class UsersAnalyticsOut(BaseModel):
    days: list[UsersDay]
    totals: UserTotals


class OfferAnalyticsOut(Shape):
    """One offer's click funnel over the period (docs/api.md "Analytics")."""

    offerId: int
    title: str
    clicks: int
    conversions: int = Field(description="sales attributed to a click, counted on the day the "
                             "sale was created, whatever became of it")
    conversionRate: Decimal | None = Field(description="conversions / clicks, 4 decimals; null "
                                           "without clicks")
    revenue: Decimal = Field(description="commission of those sales credited, minus what "
                             "reversals took back, on the day of each ledger entry")
    epc: Decimal | None = Field(description="revenue per click, truncated to cents; null without "
                                "clicks")


class AuditOut(Shape):
    id: int
    actorId: int | None
    action: str
    targetType: str | None
    targetId: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip: str | None
    traceId: str | None
    createdAt: dt.datetime


class AdminClaimOut(ClaimOut):
    userId: int
    decidedBy: int | None
    saleId: int | None = Field(description="the sale the approval made")
    saleStatus: Literal["pending", "approved", "rejected", "reversed"] | None = Field(
        description="pending until a worker credits it, then approved")


class PostbackLogOut(Shape):
    """One logged callback, as support sees it."""

    id: int
    network: str
    method: str
    params: dict[str, str] = Field(description="as received (bounded), every signature, hash or "
                                   "secret-like value replaced by \"[redacted]\"")
    ip: str | None
    verdict: Literal["accepted", "bad_signature", "ip_refused", "invalid"]
    outcome: str | None = Field(description="what an accepted callback did (credited, duplicate, "
                                "rejected, reversed, unknown_user, ...); null when refused")
    txnId: str | None = Field(description="the transaction id the callback names")
    userId: int | None = Field(description="the user id the callback names")
    saleId: int | None
    replayOf: int | None = Field(description="the log row this one replayed (admin replay)")
    traceId: str | None
    createdAt: dt.datetime


class PostbackReplayOut(Shape):
    """What a replay did: its own log row, and the result of checking the stored callback again
    with today's configuration. A replay that is still refused is a 200 too (its verdict says)."""

    id: int = Field(description="the replay's own postback log row")
    replayOf: int
    network: str
    verdict: Literal["accepted", "bad_signature", "ip_refused", "invalid"]
    outcome: str | None = Field(description="null when refused; `duplicate` when the callback "
                                "had been applied already (nothing changed)")
    saleId: int | None
    saleStatus: Literal["pending", "approved", "rejected", "reversed"] | None
    detail: str | None = Field(description="why it was refused, as the network would be told")
