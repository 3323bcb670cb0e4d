"""Sales: a postback's credit makes a pending sale; approval credits the ledger; a reversal
rejects a pending sale or debits an approved one (docs/money.md).

Every transition is one guarded UPDATE (``WHERE status = ...``): a task delivered twice, or an
approval racing a reversal, does its work once and the loser does nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from common.effects import resources
from common.errors import InvalidInput
from common.events import adopt_emitted
from common.models.audit import AuditLog
from common.money import commission
from common.services.leaderboard import record_approvals, record_reversal
from common.services.ledger import Entry, balance_events, post_entries, posting
from common.services.notifications import notification_json_sql
from common.services.payments import fail_pending_for_debt
from common.services.referrals import (
    REFERRAL_CTES,
    REFERRAL_NOTES,
    approval_params,
    reversal_entries,
)
from common.tracing import current_trace_id

SALE_NOTE_TYPE = "sale_approved"


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    sale_id: int | None
    status: str | None
    outcome: str


# Insert the sale unless (network, external_id) exists, and add its commission to the user's
# pending balance only when it was inserted: one statement, so a repeat changes nothing.
# The CTEs ``owner`` and ``sale`` (and the pending-balance move) that credit a sale; the web's
# postback path composes them with its log row into one statement of its own.
CREDIT_CTES = """
    WITH owner AS (SELECT id FROM users WHERE id = :user_id), sale AS (
        INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount,
                           commission_amount, status, hold_until)
        SELECT owner.id, :offer_id, :network, :external_id, :sale_amount, :commission,
               'pending', now() + make_interval(secs => :hold)
        FROM owner
        ON CONFLICT (network, external_id) DO NOTHING
        RETURNING id, user_id, commission_amount
    ), pending AS (
        UPDATE users SET pending_balance = users.pending_balance + sale.commission_amount
        FROM sale WHERE users.id = sale.user_id
    )"""
CREDIT_RESULT = "SELECT (SELECT id FROM sale) AS sale_id, EXISTS (SELECT 1 FROM owner) AS user_exists"
CREDIT = text(CREDIT_CTES + "\n" + CREDIT_RESULT)
EXISTING = text(
    "SELECT id, status, user_id FROM sales WHERE network = :network AND external_id = :external_id")
# The sale if this transaction id was seen, and the offer's payout rule: one round trip.
LOOKUP = text(
    """
    SELECT s.id AS sale_id, s.status, s.user_id AS sale_user_id,
           o.id AS offer_id, o.payout_type, o.user_share, o.fixed_payout
    FROM (SELECT 1) AS one
    LEFT JOIN sales s ON s.network = :network AND s.external_id = :external_id
    LEFT JOIN offers o ON o.network = :network AND o.external_id = :offer
    """
)
# Sync callers and the web's async fast path run the same statements: this module's through a
# session, their compiled forms (common/services/postbacks.py) on the autocommit pool, and both
# take every decision through ``plan_credit`` and ``credited``.


class UnknownOffer(InvalidInput):
    outcome = "unknown_offer"


class UnknownUser(InvalidInput):
    outcome = "unknown_user"


class UserMismatch(InvalidInput):
    """A callback names another user than the sale of its transaction id: a network's sale never
    changes hands, so this is refused (and logged) rather than applied to someone else."""

    outcome = "user_mismatch"


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """A network's report of a completion, in our terms."""

    network: str
    external_id: str
    user_id: int
    offer_external_id: str
    amount: Decimal
    hold_seconds: int

    def lookup_params(self) -> dict[str, Any]:
        return {"network": self.network, "external_id": self.external_id,
                "offer": self.offer_external_id}


# A row by column name: a SQLAlchemy RowMapping (sync callers) or a psycopg dict row (the fast path).
Found = Mapping[Any, Any]


def plan_credit(found: Found, request: CreditRequest) -> SaleOutcome | dict[str, Any]:
    """Decide a credit from its ``LOOKUP`` row: the answer of a repeat (nothing to write), or the
    parameters of ``CREDIT``. Raises ``UnknownOffer``, or ``UserMismatch`` for a transaction id
    whose sale belongs to another user (a network's sale never changes hands)."""
    if found["sale_id"] is not None:  # the common repeat: answer without touching anything
        _same_owner(found["sale_user_id"], request.user_id, request.external_id)
        return SaleOutcome(found["sale_id"], found["status"], "duplicate")
    if found["offer_id"] is None:
        raise UnknownOffer(
            f"Unknown offer {request.offer_external_id!r} for network {request.network!r}")
    earned = _commission(found, request.amount)
    return {
        "user_id": request.user_id, "offer_id": found["offer_id"], "network": request.network,
        "external_id": request.external_id, "sale_amount": max(request.amount, Decimal(0)),
        "commission": earned, "hold": request.hold_seconds,
    }


def repeat(existing: Found, request: CreditRequest) -> SaleOutcome:
    """A credit whose transaction id another callback inserted first (an ``EXISTING`` row):
    a repeat if it names the same user, else ``UserMismatch``."""
    _same_owner(existing["user_id"], request.user_id, request.external_id)
    return SaleOutcome(existing["id"], existing["status"], "duplicate")


def _commission(offer: Found, network_amount: Decimal) -> Decimal:
    """The user's commission under the offer's payout rule (columns of a ``LOOKUP`` row)."""
    return commission(payout_type=offer["payout_type"], user_share=offer["user_share"],
                      fixed_payout=offer["fixed_payout"], network_amount=network_amount)


def _same_owner(owner_id: int, user_id: int, external_id: str) -> None:
    if owner_id != user_id:
        raise UserMismatch(f"Transaction {external_id!r} belongs to another user")


def credited(row: Found) -> SaleOutcome | None:
    """The outcome of ``CREDIT``: the new pending sale; ``UnknownUser``; or None when a concurrent
    callback inserted the sale first (the caller answers with ``EXISTING``)."""
    if row["sale_id"] is not None:
        return SaleOutcome(row["sale_id"], "pending", "credited")
    if not row["user_exists"]:
        raise UnknownUser("Unknown user")
    return None


def credit_sale(session: Session, **request: Any) -> SaleOutcome:
    """A network reports a completion: a pending sale, once per (network, external_id)."""
    credit = CreditRequest(**request)
    found = session.execute(LOOKUP, credit.lookup_params()).mappings().one()
    plan = plan_credit(found, credit)
    if isinstance(plan, SaleOutcome):
        return plan
    outcome = credited(session.execute(CREDIT, plan).mappings().one())
    if outcome is not None:
        return outcome
    again = session.execute(EXISTING, {"network": credit.network,
                                       "external_id": credit.external_id}).mappings().one()
    return repeat(again, credit)


# Approve the selected pending sales in ONE statement: the guarded transition, one ``sale_credit``
# per sale with a commission and one ``referral`` per sale of a referee that earns its referrer
# something (``REFERRAL_CTES``, common/services/referrals.py), all posted by the ledger's rule
# (``posting``: unless its key exists, balance and pending_balance moved in one update per user),
# a ``sale_approved`` notification per sale and a ``referral_earned`` one per referrer, and their
# events (``balance:updated`` with the balance after each entry, then ``notification:new``) in the
# outbox.
# The batch's selection is materialised first: inside ``IN (...)`` a LIMIT with SKIP LOCKED may be
# evaluated more than once and approve more than the batch.
_APPROVE = """
WITH picked AS MATERIALIZED ({selection}), sale AS (
    UPDATE sales SET status = 'approved', decided_at = now()
    WHERE id IN (SELECT id FROM picked) AND status = 'pending'
    RETURNING id, user_id, commission_amount, offer_id
)""" + REFERRAL_CTES + """, credit AS (
    SELECT id * 2 AS seq, user_id, commission_amount AS amount, 'sale_credit' AS kind,
           'sale' AS reference_type, id AS reference_id, 'sale_credit:' || id AS idempotency_key,
           false AS allow_debt
    FROM sale WHERE commission_amount > 0
    UNION ALL
    SELECT * FROM referral_credit
), pending AS (
    SELECT user_id, -commission_amount AS amount FROM sale
)""" + posting("credit", also_add=("pending_balance", "pending")) + f"""
, note AS (
    INSERT INTO notifications (user_id, type, title, body, data)
    SELECT sale.user_id, '{SALE_NOTE_TYPE}', 'Offer reward approved',
           offers.title || ': ' || sale.commission_amount || ' added to your balance',
           jsonb_build_object('saleId', sale.id, 'amount', sale.commission_amount)
    FROM sale JOIN offers ON offers.id = sale.offer_id
    UNION ALL{REFERRAL_NOTES}
    RETURNING id, user_id, type, title, body, data, read_at, created_at
), event AS (
    INSERT INTO outbox (target, target_id, event, data, trace_id)
    SELECT 'user', user_id, event, data, CAST(:trace_id AS varchar) FROM (
        SELECT user_id, id, 0 AS kind, event, data FROM ({balance_events()}) AS balance
        UNION ALL
        SELECT user_id, id, 1, 'notification:new', {notification_json_sql('note')} FROM note
    ) AS ordered ORDER BY kind, user_id, id
    RETURNING id, target, target_id, event, data, trace_id
)
SELECT (SELECT count(*) FROM sale) AS approved, event.* FROM event ORDER BY event.id
"""
_APPROVE_ONE = text(_APPROVE.replace("{selection}", "SELECT CAST(:sale_id AS bigint) AS id"))
_APPROVE_DUE = text(
    _APPROVE.replace(
        "{selection}",
        "SELECT id FROM sales WHERE status = 'pending' AND hold_until <= now() "
        "ORDER BY hold_until LIMIT :batch FOR UPDATE SKIP LOCKED",
    )
)


def approve_sale(session: Session, *, sale_id: int) -> bool:
    """pending -> approved for one sale (admin, or a task); False when it was not pending."""
    return _approved(session, _APPROVE_ONE, {"sale_id": sale_id}) > 0


def approve_due_sales(session: Session, *, batch: int = 500) -> int:
    """Approve up to ``batch`` sales whose hold has passed; concurrent batches skip each
    other's rows (SKIP LOCKED). Returns how many were approved."""
    return _approved(session, _APPROVE_DUE, {"batch": batch})


def _approved(session: Session, statement: Any, params: dict[str, Any]) -> int:
    referral = approval_params(resources(session).settings, dt.datetime.now(dt.UTC))
    rows = session.execute(statement, {**params, **referral,
                                       "trace_id": current_trace_id()}).all()
    adopt_emitted(session, rows)
    # Only the sales' own commissions count for leaderboards, never referral earnings.
    record_approvals(session, sale_ids=[r.data["data"]["saleId"] for r in rows
                                        if r.event == "notification:new"
                                        and r.data["type"] == SALE_NOTE_TYPE])
    # Every approved sale has its notification:new event, so the count is in every row.
    return rows[0].approved if rows else 0


_REJECT = text(
    """
    WITH sale AS (
        UPDATE sales SET status = 'rejected', decided_at = now()
        WHERE id = :sale_id AND status = 'pending'
        RETURNING id, user_id, commission_amount
    )
    UPDATE users SET pending_balance = users.pending_balance - sale.commission_amount
    FROM sale WHERE users.id = sale.user_id
    RETURNING sale.id
    """
)
_REVERSE = text(
    """
    UPDATE sales SET status = 'reversed', decided_at = now()
    WHERE id = :sale_id AND status = 'approved'
    RETURNING id, user_id, commission_amount
    """
)


def reject_sale(session: Session, *, sale_id: int) -> bool:
    """pending -> rejected; the commission leaves the pending balance. False if not pending."""
    return session.execute(_REJECT, {"sale_id": sale_id}).first() is not None


def reverse_sale(session: Session, *, sale_id: int) -> str:
    """A network takes a sale back: pending -> rejected, or approved -> reversed with a
    ``sale_reversal`` debit of the whole commission, and a ``referral_reversal`` of the referral it
    paid, if any, in the same posting. If a member already spent it, their balance goes below
    zero: a debt that their pending withdrawals pay back first (they fail and their holds come
    back), then later credits; it refuses withdrawals while open and is audited for admins
    (docs/money.md). Returns the outcome."""
    if reject_sale(session, sale_id=sale_id):
        return "rejected"
    sale = session.execute(_REVERSE, {"sale_id": sale_id}).first()
    if sale is None:
        return "already_final"
    record_reversal(session, sale_id=sale.id, user_id=sale.user_id, amount=sale.commission_amount)
    if sale.commission_amount == 0:
        return "reversed"
    entries = [Entry(user_id=sale.user_id, amount=-sale.commission_amount, kind="sale_reversal",
                     key=f"sale_reversal:{sale.id}", reference_type="sale", reference_id=sale.id,
                     allow_debt=True),
               *reversal_entries(session, sale_id=sale.id)]
    for entry, posted in zip(entries, post_entries(session, entries), strict=True):
        if posted is not None and posted.balance < 0:
            _reversal_debt(session, entry, posted.balance)
    return "reversed"


def _reversal_debt(session: Session, entry: Entry, balance: Decimal) -> None:
    """A reversal took ``entry.user_id`` below zero: their pending withdrawals pay the debt back
    first (``fail_pending_for_debt``), and admins see it in the audit log."""
    failed = fail_pending_for_debt(session, user_id=entry.user_id)
    session.execute(insert(AuditLog).values(
        action="sale.reversal_debt", actor_id=None, target_type="user",
        target_id=str(entry.user_id),
        after={"userId": entry.user_id, "commission": str(-entry.amount),
               "balanceAfter": str(balance), "paymentsFailed": failed},
    ))


# A reversal whose credit has not arrived: the sale is stored as already rejected, so the credit,
# when it comes, is a repeat of a decided transaction and credits nothing.
_REJECTED_EARLY = text(
    """
    INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount, commission_amount,
                       status, hold_until, decided_at)
    SELECT id, :offer_id, :network, :external_id, :sale_amount, :commission, 'rejected', now(), now()
    FROM users WHERE id = :user_id
    ON CONFLICT (network, external_id) DO NOTHING
    RETURNING id
    """
)


def reverse_callback(
    session: Session, *, network: str, external_id: str, user_id: int, offer_external_id: str,
    amount: Decimal,
) -> SaleOutcome:
    """A reversal postback: reverse the sale of that transaction id, or, when the credit has not
    come yet, remember the reversal as a rejected sale (unknown user or offer: nothing to keep)."""
    found = session.execute(LOOKUP, {"network": network, "external_id": external_id,
                                     "offer": offer_external_id}).mappings().one()
    sale_id, owner_id = found["sale_id"], found["sale_user_id"]
    if sale_id is None:
        if found["offer_id"] is None:
            return SaleOutcome(None, None, "unknown_sale")
        early = session.execute(_REJECTED_EARLY, {
            "user_id": user_id, "offer_id": found["offer_id"], "network": network,
            "external_id": external_id, "sale_amount": abs(amount),
            "commission": _commission(found, abs(amount)),
        }).first()
        if early is not None:
            return SaleOutcome(early.id, "rejected", "reversal_before_credit")
        # Nothing inserted: an unknown user, or a credit that committed since the lookup.
        existing = session.execute(EXISTING, {"network": network, "external_id": external_id}).first()
        if existing is None:
            return SaleOutcome(None, None, "unknown_sale")
        sale_id, owner_id = existing.id, existing.user_id
    _same_owner(owner_id, user_id, external_id)
    outcome = reverse_sale(session, sale_id=sale_id)
    status = session.execute(text("SELECT status FROM sales WHERE id = :id"), {"id": sale_id})
    return SaleOutcome(sale_id, status.scalar_one(), outcome)
