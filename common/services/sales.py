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

from common.config import CLAIM_NETWORK, get_settings
from common.effects import resources
from common.errors import Conflict, InvalidInput
from common.events import adopt_emitted
from common.models.audit import AuditLog
from common.money import cents_from_json, commission
from common.services import risk_signals
from common.services.clicks import is_click_id
from common.services.leaderboard import record_approved, record_reversal
from common.services.ledger import Entry, balance_events, post_entries, posting
from common.services.notifications import notification_json_sql
from common.services.payments import fail_pending_for_debt
from common.services.referrals import (
    REFERRAL_CTES,
    REFERRAL_NOTES,
    approval_params,
    reversal_entries,
)
from common.services.risk_signals import CREDIT_RISK_CTES, credit_risk_params
from common.tracing import current_trace_id

SALE_NOTE_TYPE = "sale_approved"


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    sale_id: int | None
    status: str | None
    outcome: str


def _claims_conversion(offer_id: str, clicked_at: str) -> str:
    """SQL, over ``sales p``: an approved claim's sale of ``:user_id`` for the offer, not rejected
    and still without the network's transaction, that a report of this offer (naming a click made
    at ``clicked_at``, or none: NULL) is the conversion of: the network reports the conversion
    late, so it names no click or one made before the claim's sale (docs/money.md)."""
    return (f"p.user_id = :user_id AND p.offer_id = {offer_id} AND p.network = '{CLAIM_NETWORK}' "
            f"AND p.claim_id IS NOT NULL AND p.status <> 'rejected' "
            f"AND ({clicked_at} IS NULL OR {clicked_at} <= p.created_at)")


# Insert the sale unless (network, external_id) exists, or its click already has a sale (a claim's
# credit that committed meanwhile: both keys are unique, and DO NOTHING covers both), and add its
# commission to the user's pending balance only when it was inserted: one statement, so a repeat
# changes nothing.
# Nor while the user's claims of the offer change under it: an approved claim's sale that the
# report would be the conversion of (committed since the lookup: the caller decides again, and
# adopts it), or an approval in flight. The open claims of the user's offer are locked ``FOR
# SHARE`` before the insert: an approval waits for this credit to commit and then sees its sale
# (``offer_converted``); a claim approved while this statement waited is no longer open when
# locked, so the counts differ and nothing is inserted.
# The CTEs ``owner`` and ``sale`` (and the pending-balance move) that credit a sale; the web's
# postback path composes them with its log row into one statement of its own.
CREDIT_CTES = f"""
    WITH owner AS (SELECT id FROM users WHERE id = :user_id), open_claims AS (
        SELECT id FROM claims
        WHERE user_id = :user_id AND offer_id = :offer_id AND status = 'open'
        FOR SHARE
    ), sale AS (
        INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount,
                           commission_amount, status, hold_until, click_id)
        SELECT owner.id, :offer_id, :network, :external_id, :sale_amount, :commission,
               'pending', now() + make_interval(secs => :hold), CAST(:click_id AS varchar)
        FROM owner
        WHERE NOT EXISTS (SELECT 1 FROM sales p WHERE {_claims_conversion(
                  ":offer_id", "(SELECT created_at FROM clicks "
                               "WHERE public_id = CAST(:click_id AS varchar))")})
          AND (SELECT count(*) FROM open_claims) = (
              SELECT count(*) FROM claims
              WHERE user_id = :user_id AND offer_id = :offer_id AND status = 'open')
        ON CONFLICT DO NOTHING
        RETURNING id, user_id, commission_amount
    ), pending AS (
        UPDATE users SET pending_balance = users.pending_balance + sale.commission_amount
        FROM sale WHERE users.id = sale.user_id
    )""" + CREDIT_RISK_CTES
CREDIT_RESULT = "SELECT (SELECT id FROM sale) AS sale_id, EXISTS (SELECT 1 FROM owner) AS user_exists"
CREDIT = text(CREDIT_CTES + "\n" + CREDIT_RESULT)
# A network's report of an approved claim's conversion: the network's transaction becomes the
# identity of the claim's sale (network ``claim``, external id ``claim:<id>`` until then), once
# (only while it has its placeholder) and only if no sale has that transaction id yet. Later
# reports of the transaction (its repeats, its chargeback) find the claim's sale by it.
ADOPT_CTES = f"""
    WITH adopted AS (
        UPDATE sales SET network = :network, external_id = :external_id
        WHERE id = :sale_id AND network = '{CLAIM_NETWORK}' AND claim_id IS NOT NULL
          AND status <> 'rejected'
          AND NOT EXISTS (SELECT 1 FROM sales taken
                          WHERE taken.network = :network AND taken.external_id = :external_id)
        RETURNING id, status
    )"""
ADOPT_RESULT = "SELECT id AS sale_id, status FROM adopted"
ADOPT = text(ADOPT_CTES + "\n" + ADOPT_RESULT)
# The sale if this transaction id was seen, the offer's payout rule, the click the callback names
# (NULL :click_id: none) with the sale it already has, and the approved claim's sale the report
# would be the conversion of: one round trip.
LOOKUP = text(
    f"""
    SELECT s.id AS sale_id, s.status, s.user_id AS sale_user_id,
           o.id AS offer_id, o.payout_type, o.user_share, o.fixed_payout,
           c.user_id AS click_user_id, c.offer_id AS click_offer_id,
           c.created_at >= now() - make_interval(days => :click_days) AS click_fresh,
           cs.id AS click_sale_id, cs.status AS click_sale_status,
           cs.claim_id IS NOT NULL AS click_claimed, cs.network AS click_sale_network,
           conversion.id AS claim_sale_id, conversion.status AS claim_sale_status
    FROM (SELECT 1) AS one
    LEFT JOIN sales s ON s.network = :network AND s.external_id = :external_id
    LEFT JOIN offers o ON o.network = :network AND o.external_id = :offer
    LEFT JOIN clicks c ON c.public_id = CAST(:click_id AS varchar)
    LEFT JOIN sales cs ON cs.click_id = c.public_id
    LEFT JOIN LATERAL (
        SELECT p.id, p.status FROM sales p WHERE {_claims_conversion("o.id", "c.created_at")}
        ORDER BY p.id LIMIT 1
    ) AS conversion ON true
    """
)
# Sync callers and the web's async fast path run the same statements: this module's through a
# session, their compiled forms (common/services/postbacks.py) on the autocommit pool, and both
# take every decision through ``plan_credit`` and ``credited``.


class UnknownOffer(InvalidInput):
    outcome = "unknown_offer"


class UnknownUser(InvalidInput):
    outcome = "unknown_user"


class ClickMismatch(InvalidInput):
    """A callback names a click that is unknown, another user's or offer's, too old, or already
    converted: refused (and logged), nothing credited."""

    outcome = "click_mismatch"


class UserMismatch(InvalidInput):
    """A callback names another user than the sale of its transaction id: a network's sale never
    changes hands, so this is refused (and logged) rather than applied to someone else."""

    outcome = "user_mismatch"


class ClaimSale(Conflict):
    """The pending sale an approved claim made: the approval promised the member its credit (the
    worker's ``approve_sale``), so no one may reject it in between (409)."""

    code = "claim_sale"


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """A network's report of a completion, in our terms."""

    network: str
    external_id: str
    user_id: int
    offer_external_id: str
    amount: Decimal
    hold_seconds: int
    # The click the network names (its sub-id parameter), as sent; None when it names none.
    click_id: str | None = None
    # How long a click may be named (CLICK_RETENTION_DAYS); None: the process settings.
    click_days: int | None = None
    # ``credit_risk_params`` of the caller's settings; None: the process settings.
    risk: Mapping[str, Any] | None = None

    def lookup_params(self) -> dict[str, Any]:
        days = self.click_days if self.click_days is not None else get_settings().click_retention_days
        click = self.click_id if self.click_id is not None and is_click_id(self.click_id) else None
        return {"network": self.network, "external_id": self.external_id, "user_id": self.user_id,
                "offer": self.offer_external_id, "click_id": click, "click_days": days}


# A row by column name: a SQLAlchemy RowMapping (sync callers) or a psycopg dict row (the fast path).
Found = Mapping[Any, Any]


@dataclass(frozen=True, slots=True)
class Adoption:
    """A credit that is an approved claim's conversion reported by the network: nothing is
    credited, and the network's transaction becomes the claim's sale's identity (``ADOPT``)."""

    sale_id: int
    status: str

    def params(self, request: CreditRequest) -> dict[str, Any]:
        return {"sale_id": self.sale_id, "network": request.network,
                "external_id": request.external_id}

    def outcome(self) -> SaleOutcome:
        return SaleOutcome(self.sale_id, self.status, "claimed")


# What a credit does, decided from its ``LOOKUP`` row: answer (nothing to write), adopt a claim's
# sale (``ADOPT``), or insert a sale (``CREDIT``, with these parameters).
Plan = SaleOutcome | Adoption | dict[str, Any]


def plan_credit(found: Found, request: CreditRequest) -> Plan:
    """Decide a credit from its ``LOOKUP`` row: the answer of a repeat (nothing to write), the
    claim's sale it reports (``Adoption``), or the parameters of ``CREDIT``. Raises
    ``UnknownOffer``, ``ClickMismatch``, or ``UserMismatch`` for a transaction id whose sale
    belongs to another user (a network's sale never changes hands)."""
    if found["sale_id"] is not None:  # the common repeat: answer without touching anything
        _same_owner(found["sale_user_id"], request.user_id, request.external_id)
        return SaleOutcome(found["sale_id"], found["status"], "duplicate")
    if found["offer_id"] is None:
        raise UnknownOffer(
            f"Unknown offer {request.offer_external_id!r} for network {request.network!r}")
    claimed = _check_click(found, request)
    if claimed is not None:
        return claimed
    if found["claim_sale_id"] is not None:  # reported late: the approved claim's conversion
        return Adoption(found["claim_sale_id"], found["claim_sale_status"])
    earned = _commission(found, request.amount)
    return {
        "user_id": request.user_id, "offer_id": found["offer_id"], "network": request.network,
        "external_id": request.external_id, "sale_amount": max(request.amount, Decimal(0)),
        "commission": earned, "hold": request.hold_seconds, "click_id": request.click_id,
        **(request.risk if request.risk is not None else credit_risk_params(get_settings())),
    }


def _check_click(found: Found, request: CreditRequest) -> Adoption | None:
    """The attribution rule (docs/money.md): a named click must exist (a malformed id finds none),
    be this user's, for this offer, and no older than CLICK_RETENTION_DAYS, else
    ``ClickMismatch``. A click whose approved claim made its sale, not rejected and still without
    the network's transaction, is that claim's conversion (``Adoption``: answered ``claimed``,
    nothing credited); a click that converted otherwise is refused, since a click converts once."""
    if request.click_id is None:
        return None
    if found["click_user_id"] is None:
        raise ClickMismatch("Unknown click")
    if found["click_user_id"] != request.user_id:
        raise ClickMismatch("The click belongs to another user")
    if found["click_offer_id"] != found["offer_id"]:
        raise ClickMismatch("The click was made for another offer")
    if (found["click_claimed"] and found["click_sale_status"] != "rejected"
            and found["click_sale_network"] == CLAIM_NETWORK):
        return Adoption(found["click_sale_id"], found["click_sale_status"])
    if found["click_sale_id"] is not None:
        raise ClickMismatch("The click already has a sale")
    if not found["click_fresh"]:
        raise ClickMismatch("The click is older than the click retention period")
    return None


def _commission(offer: Found, network_amount: Decimal) -> Decimal:
    """The user's commission under the offer's payout rule (columns of a ``LOOKUP`` row)."""
    return commission(payout_type=offer["payout_type"], user_share=offer["user_share"],
                      fixed_payout=offer["fixed_payout"], network_amount=network_amount)


def _same_owner(owner_id: int, user_id: int, external_id: str) -> None:
    if owner_id != user_id:
        raise UserMismatch(f"Transaction {external_id!r} belongs to another user")


def credited(row: Found) -> SaleOutcome | None:
    """The outcome of ``CREDIT``: the new pending sale; ``UnknownUser``; or None when nothing was
    inserted because a concurrent change (its transaction id or its click got a sale) came first:
    the caller decides again from a fresh ``LOOKUP``."""
    if row["sale_id"] is not None:
        return SaleOutcome(row["sale_id"], "pending", "credited")
    if not row["user_exists"]:
        raise UnknownUser("Unknown user")
    return None


def adopted(row: Found | None) -> SaleOutcome | None:
    """The outcome of ``ADOPT``: ``claimed``, or None when a concurrent change came first (the
    caller decides again from a fresh ``LOOKUP``)."""
    return None if row is None else SaleOutcome(row["sale_id"], row["status"], "claimed")


# How often a credit decides again after a concurrent change beat its write. Each change is
# final (a transaction id or a click gets its sale, a claim's sale its transaction), so the
# second decision nearly always stands; running out is a 500 the network retries.
ATTEMPTS = 4


class CreditContended(RuntimeError):
    """Concurrent changes beat a credit's write ``ATTEMPTS`` times (a 500; the network retries)."""


def credit_sale(session: Session, **request: Any) -> SaleOutcome:
    """A network reports a completion: a pending sale, once per (network, external_id), and once
    per click when it names one; or the approved claim's sale it reports (``claimed``)."""
    credit = CreditRequest(**{"risk": credit_risk_params(resources(session).settings), **request})
    for _ in range(ATTEMPTS):
        plan = plan_credit(session.execute(LOOKUP, credit.lookup_params()).mappings().one(), credit)
        if isinstance(plan, SaleOutcome):
            return plan
        if isinstance(plan, Adoption):
            outcome = adopted(session.execute(ADOPT, plan.params(credit)).mappings().first())
        else:
            outcome = credited(session.execute(CREDIT, plan).mappings().one())
        if outcome is not None:
            return outcome
    raise CreditContended(f"Transaction {credit.external_id!r}: contended, try again")


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
SELECT (SELECT count(*) FROM sale) AS approved, now() AS decided_at, event.*
FROM event ORDER BY event.id
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
    # Only the sales' own commissions count for leaderboards, never referral earnings. Each
    # approved sale's notification names its owner (the event's target) and its commission, and
    # the statement says when it approved them: no second read of the sales.
    record_approved(session, [
        (r.target_id, cents_from_json(r.data["data"]["amount"]), r.decided_at) for r in rows
        if r.event == "notification:new" and r.data["type"] == SALE_NOTE_TYPE])
    # Every approved sale has its notification:new event, so the count is in every row.
    return rows[0].approved if rows else 0


_REJECT = text(
    """
    WITH sale AS (
        UPDATE sales SET status = 'rejected', decided_at = now()
        WHERE id = :sale_id AND status = 'pending'
          AND (claim_id IS NULL OR network <> :claim_network)
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


_CLAIM_OF_PENDING = text("SELECT claim_id FROM sales WHERE id = :sale_id AND status = 'pending'")


def reject_sale(session: Session, *, sale_id: int) -> bool:
    """pending -> rejected; the commission leaves the pending balance. False if not pending.

    The one rejection rule (an admin's, a worker's, a network's reversal of a pending sale): the
    sale of an approved claim is not rejected (``ClaimSale``, 409) while it is only the claim's
    (network ``claim``), or the claim would stay approved with nothing credited. Once the network
    reported the conversion (the sale took its transaction), the network's chargeback decides it
    like any sale of the network's. Its ``claim_id`` never changes, so the guard in the UPDATE
    cannot race; the read after it only says why nothing was rejected."""
    if session.execute(_REJECT, {"sale_id": sale_id, "claim_network": CLAIM_NETWORK}).first() \
            is not None:
        return True
    claim_id = session.execute(_CLAIM_OF_PENDING, {"sale_id": sale_id}).scalar()
    if claim_id is not None:
        raise ClaimSale(f"Sale {sale_id} was made by approving missing-credit claim {claim_id}; "
                        "it is credited by that approval and cannot be rejected")
    return False


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


# A reversal whose credit has not arrived: the sale is stored as already rejected, with the click
# it names, so the credit, when it comes, is a repeat of a decided transaction and credits nothing,
# and the click has its sale (not claimable: the network decided its conversion). Nothing is
# inserted when a credit of the transaction, or a sale of the click, committed meanwhile.
_REJECTED_EARLY = text(
    """
    WITH owner AS (SELECT id FROM users WHERE id = :user_id), sale AS (
        INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount,
                           commission_amount, status, hold_until, decided_at, click_id)
        SELECT owner.id, :offer_id, :network, :external_id, :sale_amount, :commission,
               'rejected', now(), now(), CAST(:click_id AS varchar)
        FROM owner
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT (SELECT id FROM sale) AS sale_id, EXISTS (SELECT 1 FROM owner) AS user_exists
    """
)


def reverse_callback(
    session: Session, *, network: str, external_id: str, user_id: int, offer_external_id: str,
    amount: Decimal, click_id: str | None = None, click_days: int | None = None,
) -> SaleOutcome:
    """A reversal postback: reverse the sale of that transaction id, or the approved claim's sale
    it reports (the credit rule decides, ``plan_credit``: the network's transaction becomes that
    sale's identity first), or, when the credit has not come yet, remember the reversal as a
    rejected sale (unknown user or offer: nothing to keep). A named click is checked as a
    credit's is (``ClickMismatch``)."""
    request = CreditRequest(network=network, external_id=external_id, user_id=user_id,
                            offer_external_id=offer_external_id, amount=abs(amount),
                            hold_seconds=0, click_id=click_id, click_days=click_days)
    for _ in range(ATTEMPTS):
        found = session.execute(LOOKUP, request.lookup_params()).mappings().one()
        if found["sale_id"] is None and found["offer_id"] is None:
            return SaleOutcome(None, None, "unknown_sale")
        plan = plan_credit(found, request)
        if isinstance(plan, SaleOutcome):  # the transaction's sale, this user's
            return _reversed(session, plan.sale_id)
        if isinstance(plan, Adoption):
            claimed = adopted(session.execute(ADOPT, plan.params(request)).mappings().first())
            if claimed is not None:
                return _reversed(session, claimed.sale_id)
            continue
        early = session.execute(_REJECTED_EARLY, {
            "user_id": user_id, "offer_id": plan["offer_id"], "network": network,
            "external_id": external_id, "sale_amount": plan["sale_amount"],
            "commission": plan["commission"], "click_id": plan["click_id"],
        }).mappings().one()
        if early["sale_id"] is not None:
            return SaleOutcome(early["sale_id"], "rejected", "reversal_before_credit")
        if not early["user_exists"]:
            return SaleOutcome(None, None, "unknown_sale")
        # Nothing inserted: a credit of this transaction id, or a sale of its click, committed
        # since the lookup.
    raise CreditContended(f"Transaction {external_id!r}: contended, try again")


def _reversed(session: Session, sale_id: int | None) -> SaleOutcome:
    assert sale_id is not None
    outcome = reverse_sale(session, sale_id=sale_id)
    if outcome in ("rejected", "reversed"):
        risk_signals.record_reversal(session, sale_id=sale_id)
    status = session.execute(text("SELECT status FROM sales WHERE id = :id"), {"id": sale_id})
    return SaleOutcome(sale_id, status.scalar_one(), outcome)
