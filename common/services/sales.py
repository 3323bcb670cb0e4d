"""Sales: a postback's credit makes a pending sale; approval credits the ledger; a reversal
rejects a pending sale or debits an approved one (docs/money.md).

Every transition is one guarded UPDATE (``WHERE status = ...``): a task delivered twice, or an
approval racing a reversal, does its work once and the loser does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from common.config import get_settings
from common.errors import Conflict, InvalidInput
from common.events import adopt_emitted
from common.models.audit import AuditLog
from common.money import commission
from common.services.clicks import is_click_id
from common.services.leaderboard import record_approvals, record_reversal
from common.services.ledger import balance_events, post_entry, posting
from common.services.notifications import notification_json_sql
from common.services.payments import fail_pending_for_debt
from common.tracing import current_trace_id


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    sale_id: int | None
    status: str | None
    outcome: str


# Insert the sale unless (network, external_id) exists, or its click already has a sale (a claim's
# credit that committed meanwhile: both keys are unique, and DO NOTHING covers both), and add its
# commission to the user's pending balance only when it was inserted: one statement, so a repeat
# changes nothing.
# The CTEs ``owner`` and ``sale`` (and the pending-balance move) that credit a sale; the web's
# postback path composes them with its log row into one statement of its own.
CREDIT_CTES = """
    WITH owner AS (SELECT id FROM users WHERE id = :user_id), sale AS (
        INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount,
                           commission_amount, status, hold_until, click_id)
        SELECT owner.id, :offer_id, :network, :external_id, :sale_amount, :commission,
               'pending', now() + make_interval(secs => :hold), CAST(:click_id AS varchar)
        FROM owner
        ON CONFLICT DO NOTHING
        RETURNING id, user_id, commission_amount
    ), pending AS (
        UPDATE users SET pending_balance = users.pending_balance + sale.commission_amount
        FROM sale WHERE users.id = sale.user_id
    )"""
CREDIT_RESULT = "SELECT (SELECT id FROM sale) AS sale_id, EXISTS (SELECT 1 FROM owner) AS user_exists"
CREDIT = text(CREDIT_CTES + "\n" + CREDIT_RESULT)
EXISTING = text(
    "SELECT id, status, user_id FROM sales WHERE network = :network AND external_id = :external_id")
# The sale if this transaction id was seen, the offer's payout rule, and the click the callback
# names (NULL :click_id: none) with the sale it already has: one round trip.
LOOKUP = text(
    """
    SELECT s.id AS sale_id, s.status, s.user_id AS sale_user_id,
           o.id AS offer_id, o.payout_type, o.user_share, o.fixed_payout,
           c.user_id AS click_user_id, c.offer_id AS click_offer_id,
           c.created_at >= now() - make_interval(days => :click_days) AS click_fresh,
           cs.id AS click_sale_id, cs.status AS click_sale_status,
           cs.claim_id IS NOT NULL AS click_claimed
    FROM (SELECT 1) AS one
    LEFT JOIN sales s ON s.network = :network AND s.external_id = :external_id
    LEFT JOIN offers o ON o.network = :network AND o.external_id = :offer
    LEFT JOIN clicks c ON c.public_id = CAST(:click_id AS varchar)
    LEFT JOIN sales cs ON cs.click_id = c.public_id
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

    def lookup_params(self) -> dict[str, Any]:
        days = self.click_days if self.click_days is not None else get_settings().click_retention_days
        click = self.click_id if self.click_id is not None and is_click_id(self.click_id) else None
        return {"network": self.network, "external_id": self.external_id,
                "offer": self.offer_external_id, "click_id": click, "click_days": days}


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
    claimed = _check_click(found, request)
    if claimed is not None:
        return claimed
    earned = _commission(found, request.amount)
    return {
        "user_id": request.user_id, "offer_id": found["offer_id"], "network": request.network,
        "external_id": request.external_id, "sale_amount": max(request.amount, Decimal(0)),
        "commission": earned, "hold": request.hold_seconds, "click_id": request.click_id,
    }


def _check_click(found: Found, request: CreditRequest) -> SaleOutcome | None:
    """The attribution rule (docs/money.md): a named click must exist (a malformed id finds none),
    be this user's, for this offer, and no older than CLICK_RETENTION_DAYS, else
    ``ClickMismatch``. A click whose approved claim already made its sale answers ``claimed``
    (acknowledged, nothing credited); a click that converted under another transaction id is
    refused, since a click converts once."""
    if request.click_id is None:
        return None
    if found["click_user_id"] is None:
        raise ClickMismatch("Unknown click")
    if found["click_user_id"] != request.user_id:
        raise ClickMismatch("The click belongs to another user")
    if found["click_offer_id"] != found["offer_id"]:
        raise ClickMismatch("The click was made for another offer")
    if found["click_claimed"]:
        return SaleOutcome(found["click_sale_id"], found["click_sale_status"], "claimed")
    if not found["click_fresh"]:
        raise ClickMismatch("The click is older than the click retention period")
    if found["click_sale_id"] is not None:
        raise ClickMismatch("The click already has a sale")
    return None


def repeat(existing: Found, request: CreditRequest) -> SaleOutcome:
    """A credit whose transaction id another callback inserted first (an ``EXISTING`` row):
    a repeat if it names the same user, else ``UserMismatch``."""
    _same_owner(existing["user_id"], request.user_id, request.external_id)
    return SaleOutcome(existing["id"], existing["status"], "duplicate")


def click_taken(found: Found, request: CreditRequest) -> SaleOutcome:
    """A credit that inserted nothing although its transaction id is new: its click got a sale
    after the lookup (a claim approved meanwhile). ``found`` is a fresh ``LOOKUP`` row: the
    answer is ``claimed``, or ``ClickMismatch``."""
    plan = plan_credit(found, request)
    if isinstance(plan, SaleOutcome):
        return plan
    raise ClickMismatch("The click already has a sale")


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
    """A network reports a completion: a pending sale, once per (network, external_id), and once
    per click when it names one."""
    credit = CreditRequest(**request)
    found = session.execute(LOOKUP, credit.lookup_params()).mappings().one()
    plan = plan_credit(found, credit)
    if isinstance(plan, SaleOutcome):
        return plan
    outcome = credited(session.execute(CREDIT, plan).mappings().one())
    if outcome is not None:
        return outcome
    again = session.execute(EXISTING, {"network": credit.network,
                                       "external_id": credit.external_id}).mappings().first()
    if again is None:
        return click_taken(session.execute(LOOKUP, credit.lookup_params()).mappings().one(), credit)
    return repeat(again, credit)


# Approve the selected pending sales in ONE statement: the guarded transition, one ``sale_credit``
# per sale with a commission posted by the ledger's rule (``posting``: unless its key exists,
# balance and pending_balance moved in one update per user), a ``sale_approved`` notification per
# sale, and their events (``balance:updated`` with the balance after each entry, then
# ``notification:new``) in the outbox.
# The batch's selection is materialised first: inside ``IN (...)`` a LIMIT with SKIP LOCKED may be
# evaluated more than once and approve more than the batch.
_APPROVE = """
WITH picked AS MATERIALIZED ({selection}), sale AS (
    UPDATE sales SET status = 'approved', decided_at = now()
    WHERE id IN (SELECT id FROM picked) AND status = 'pending'
    RETURNING id, user_id, commission_amount, offer_id
), credit AS (
    SELECT id AS seq, user_id, commission_amount AS amount, 'sale_credit' AS kind,
           'sale' AS reference_type, id AS reference_id, 'sale_credit:' || id AS idempotency_key,
           false AS allow_debt
    FROM sale WHERE commission_amount > 0
), pending AS (
    SELECT user_id, -commission_amount AS amount FROM sale
)""" + posting("credit", also_add=("pending_balance", "pending")) + f"""
, note AS (
    INSERT INTO notifications (user_id, type, title, body, data)
    SELECT sale.user_id, 'sale_approved', 'Offer reward approved',
           offers.title || ': ' || sale.commission_amount || ' added to your balance',
           jsonb_build_object('saleId', sale.id, 'amount', sale.commission_amount)
    FROM sale JOIN offers ON offers.id = sale.offer_id
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
    rows = session.execute(statement, {**params, "trace_id": current_trace_id()}).all()
    adopt_emitted(session, rows)
    record_approvals(session, sale_ids=[r.data["data"]["saleId"] for r in rows
                                        if r.event == "notification:new"])
    # Every approved sale has its notification:new event, so the count is in every row.
    return rows[0].approved if rows else 0


_REJECT = text(
    """
    WITH sale AS (
        UPDATE sales SET status = 'rejected', decided_at = now()
        WHERE id = :sale_id AND status = 'pending' AND claim_id IS NULL
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
    sale of an approved claim is never rejected (``ClaimSale``, 409), or the claim would stay
    approved with nothing credited. Its ``claim_id`` never changes, so the guard in the UPDATE
    cannot race; the read after it only says why nothing was rejected."""
    if session.execute(_REJECT, {"sale_id": sale_id}).first() is not None:
        return True
    claim_id = session.execute(_CLAIM_OF_PENDING, {"sale_id": sale_id}).scalar()
    if claim_id is not None:
        raise ClaimSale(f"Sale {sale_id} was made by approving missing-credit claim {claim_id}; "
                        "it is credited by that approval and cannot be rejected")
    return False


def reverse_sale(session: Session, *, sale_id: int) -> str:
    """A network takes a sale back: pending -> rejected, or approved -> reversed with a
    ``sale_reversal`` debit of the whole commission. If the member already spent it, the balance
    goes below zero: a debt that the user's pending withdrawals pay back first (they fail and their
    holds come back), then later credits; it refuses withdrawals while open and is audited for
    admins (docs/money.md). Returns the outcome."""
    if reject_sale(session, sale_id=sale_id):
        return "rejected"
    sale = session.execute(_REVERSE, {"sale_id": sale_id}).first()
    if sale is None:
        return "already_final"
    record_reversal(session, sale_id=sale.id, user_id=sale.user_id, amount=sale.commission_amount)
    if sale.commission_amount == 0:
        return "reversed"
    posted = post_entry(
        session, user_id=sale.user_id, amount=-sale.commission_amount, kind="sale_reversal",
        key=f"sale_reversal:{sale.id}", reference_type="sale", reference_id=sale.id,
        allow_debt=True,
    )
    if posted is not None and posted.balance < 0:
        failed = fail_pending_for_debt(session, user_id=sale.user_id)
        session.execute(insert(AuditLog).values(
            action="sale.reversal_debt", actor_id=None, target_type="user",
            target_id=str(sale.user_id),
            after={"userId": sale.user_id, "commission": str(sale.commission_amount),
                   "balanceAfter": str(posted.balance), "paymentsFailed": failed},
        ))
    return "reversed"


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
                                     "offer": offer_external_id, "click_id": None,
                                     "click_days": 0}).mappings().one()
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
