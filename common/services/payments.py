"""Withdrawals and payouts (docs/money.md).

payment ``pending -> processing -> paid | failed``, ``pending -> cancelled`` (by the user) and
``pending -> failed`` (rejected by an admin), each transition one guarded UPDATE. The amount is
held (ledger ``payout_hold``) when the request is accepted; ``failed`` and ``cancelled`` give it
back (``payout_release``). Every transition emits ``payment:status``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from common.effects import enqueue_after_commit, resources
from common.errors import Conflict, Forbidden, InvalidInput, NotFound, declare_codes
from common.events import emit
from common.models.payments import Payment
from common.money import CENT
from common.services.ledger import post_entry
from common.services.notifications import NewNotification, notify
from common.services.payment_review import HOLD, MEMBER_ON_HOLD, NOT_HELD
from common.services.referrals import record_shared_destination
from common.services.risk_signals import record_withdrawal
from common.wire import Shape

_p = Payment.__table__
declare_codes("below_minimum")  # MIN_WITHDRAWAL is configuration, not in the document


class PaymentOut(Shape):
    id: int
    amount: Decimal
    method: Literal["paypal", "crypto", "giftcard"]
    destination: str
    status: Literal["pending", "processing", "paid", "failed", "cancelled"]
    failureReason: str | None
    needsReview: bool = Field(description="held for a risk review (docs/risk.md): waits for an "
                              "admin's approval or rejection; stays true after the decision")
    createdAt: dt.datetime
    updatedAt: dt.datetime


def payment_json(row: Any) -> dict[str, Any]:
    """The API's ``Payment`` (money stays Decimal; the envelope prints it)."""
    return PaymentOut.of(row)


def _status_event(session: Session, row: Any) -> None:
    emit(session, event="payment:status", user_id=row["user_id"], data={
        "paymentId": row["id"], "status": row["status"], "amount": float(row["amount"])})


def _release(session: Session, row: Any) -> None:
    post_entry(session, user_id=row["user_id"], amount=row["amount"], kind="payout_release",
               key=f"payout_release:{row['id']}", reference_type="payment", reference_id=row["id"])


def validate_amount(amount: Decimal, *, minimum: Decimal) -> None:
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
        raise InvalidInput("Invalid amount", errors=["amount: must be positive with at most 2 decimals"])
    if amount < minimum:
        raise InvalidInput("Amount below the minimum withdrawal", code="below_minimum",
                           errors=[f"amount: the minimum withdrawal is {minimum}"])


def request_withdrawal(
    session: Session,
    *,
    user_id: int,
    amount: Decimal,
    method: str,
    destination: str,
    minimum: Decimal,
    auto_pay_limit: Decimal,
    ip: str | None = None,
) -> dict[str, Any]:
    """Accept a withdrawal and hold its amount in this transaction (its payout is enqueued after
    commit unless it waits for an admin); over the balance raises ``InsufficientFunds`` (422) and
    the caller's rollback leaves nothing held. The member's risk signals of this request are
    recorded first (docs/risk.md); frozen withdrawals raise ``Forbidden`` (403); a member whose
    score is then at least RISK_REVIEW_SCORE waits for an admin (``needs_review``)."""
    validate_amount(amount, minimum=minimum)
    record_withdrawal(session, user_id=user_id, destination=destination, ip=ip)
    record_shared_destination(session, user_id=user_id, destination=destination)
    review = _review_needed(session, user_id)
    row = session.execute(
        insert(_p).values(user_id=user_id, amount=amount, method=method, destination=destination,
                          needs_review=review, needs_approval=review or amount > auto_pay_limit)
        .returning(*_p.c)
    ).mappings().one()
    post_entry(session, user_id=user_id, amount=-amount, kind="payout_hold",
               key=f"payout_hold:{row['id']}", reference_type="payment", reference_id=row["id"])
    _status_event(session, row)
    if not row["needs_approval"]:
        enqueue_after_commit(session, "payouts.pay", row["id"])
    return dict(row)


FROZEN_MESSAGE = "Withdrawals are frozen on this account; please contact support"
INACTIVE_MESSAGE = "Account is not active"
# Read before anything is held, locking the member's row (the hold would lock it a statement
# later anyway, so concurrent withdrawals queue on it barely longer): a frozen or banned member
# gets 403 whatever their balance, and this sees a freeze, a ban or a score committed before it,
# while one committing later waits for this withdrawal (a ban then cancels it). The score
# includes the signals this request recorded just before (same transaction). NO KEY UPDATE, the
# lock the hold's UPDATE takes: FOR UPDATE would also conflict with the KEY SHARE locks that
# concurrent requests' inserts referencing the member (their idempotency claims) hold, and
# deadlock with them.
_GATE = text(
    "SELECT status, payouts_frozen, risk_score FROM users WHERE id = :user_id FOR NO KEY UPDATE")


def _review_needed(session: Session, user_id: int) -> bool:
    """Whether a withdrawal of ``user_id`` waits for a risk review; ``Forbidden`` when frozen or
    when the account is no longer active (a ban that committed while this request was on its
    way, its access token still valid)."""
    gate = session.execute(_GATE, {"user_id": user_id}).first()
    if gate is None:
        raise NotFound("User not found")
    if gate.status != "active":
        raise Forbidden(INACTIVE_MESSAGE)
    if gate.payouts_frozen:
        raise Forbidden(FROZEN_MESSAGE)
    return bool(gate.risk_score >= resources(session).settings.risk_review_score)


def get_payment(session: Session, *, user_id: int, payment_id: int) -> dict[str, Any]:
    row = session.execute(
        select(_p).where(_p.c.id == payment_id, _p.c.user_id == user_id)
    ).mappings().first()
    if row is None:
        raise NotFound("Payment not found")
    return dict(row)


class MemberOnHold(Conflict):
    code = "member_on_hold"


# The payment's member, locked before the payment: every path that changes a member and their
# pending payments (a withdrawal, a suspension, a freeze, a ban, an approval, a rejection, a
# cancellation) takes the member's row first, so that two of them never wait on each other's
# locks in opposite orders (a rejection releasing its hold updates the member's balance, while a
# suspension holding the member waits for the payment). The payout chain's take locks only the
# payment and never the member.
_LOCK_MEMBER = text(
    f"SELECT {MEMBER_ON_HOLD} AS on_hold FROM users u "
    "WHERE id = (SELECT user_id FROM payments WHERE id = :payment_id) FOR NO KEY UPDATE"
)


# A member's own row, for a member acting on their own payment: locked by the caller's id, not
# through the payment, so that naming another member's payment locks nobody else's row.
_LOCK_CALLER = text("SELECT 1 FROM users WHERE id = :user_id FOR NO KEY UPDATE")
# A payment an admin could approve, were its member not on hold.
_AWAITING_APPROVAL = select(_p.c.id).where(
    _p.c.id == bindparam("payment_id"), _p.c.status == "pending", _p.c.needs_approval,
    _p.c.approved_at.is_(None))


def cancel_payment(session: Session, *, user_id: int, payment_id: int) -> dict[str, Any]:
    """The user cancels a payment still ``pending``: the hold goes back to the balance."""
    session.execute(_LOCK_CALLER, {"user_id": user_id})
    row = session.execute(
        update(_p)
        .where(_p.c.id == payment_id, _p.c.user_id == user_id, _p.c.status == "pending")
        .values(status="cancelled", updated_at=text("now()"))
        .returning(*_p.c)
    ).mappings().first()
    if row is None:
        current = get_payment(session, user_id=user_id, payment_id=payment_id)
        raise Conflict(f"Payment is {current['status']}; only a pending payment can be cancelled")
    _release(session, row)
    _status_event(session, row)
    return dict(row)


def approve_payment(session: Session, *, payment_id: int) -> bool:
    """An admin approves a payment over the auto-pay limit; its payout is enqueued after commit
    (and the recovery sweep picks it up if that enqueue is lost). 409 ``member_on_hold`` while
    the member is suspended, banned or has withdrawals frozen: the hold that change made
    (``payment_review``) is lifted by reactivating or unfreezing first, so an approval clicked
    before the change (a second click, a resend) cannot undo it."""
    member = session.execute(_LOCK_MEMBER, {"payment_id": payment_id}).first()
    if member is not None and member.on_hold:
        if session.execute(_AWAITING_APPROVAL, {"payment_id": payment_id}).first() is None:
            return False  # paid, failed, cancelled or approved already: that is the answer
        raise MemberOnHold("The member is suspended or their withdrawals are frozen: reactivate "
                           "or unfreeze them before approving, or reject the payment")
    approved = session.execute(
        update(_p)
        .where(_p.c.id == payment_id, _p.c.status == "pending", _p.c.needs_approval,
               _p.c.approved_at.is_(None))
        .values(approved_at=text("now()"), updated_at=text("now()"))
        .returning(_p.c.id)
    ).first() is not None
    if approved:
        enqueue_after_commit(session, "payouts.pay", payment_id)
    return approved


def reject_payment(session: Session, *, payment_id: int, reason: str) -> bool:
    """An admin refuses a pending payment: failed, and the hold goes back."""
    session.execute(_LOCK_MEMBER, {"payment_id": payment_id})
    row = session.execute(
        update(_p).where(_p.c.id == payment_id, _p.c.status == "pending")
        .values(status="failed", failure_reason=reason, updated_at=text("now()"))
        .returning(*_p.c)
    ).mappings().first()
    if row is None:
        return False
    _release(session, row)
    _status_event(session, row)
    _outcome_notification(session, row)
    return True


DEBT_REASON = "Cancelled: a reversed reward left your balance below zero"
_PENDING_OF = text(
    "SELECT id FROM payments WHERE user_id = :user_id AND status = 'pending' ORDER BY id DESC")
_BALANCE = text("SELECT balance FROM users WHERE id = :user_id")


def fail_pending_for_debt(session: Session, *, user_id: int) -> list[int]:
    """A reversal left the user in debt: their pending withdrawals fail, newest first, and their
    released holds pay the debt back, until it is paid or none is left (a debt never leaves with a
    withdrawal). A payment already processing is on its way to the provider and goes on."""
    failed = []
    for payment_id in session.execute(_PENDING_OF, {"user_id": user_id}).scalars():
        if session.execute(_BALANCE, {"user_id": user_id}).scalar_one() >= 0:
            break
        if reject_payment(session, payment_id=payment_id, reason=DEBT_REASON):
            failed.append(payment_id)
    return failed


BAN_REASON = "Cancelled: the account was banned"
# Every pending withdrawal of the member, cancelled in one guarded UPDATE: each payment row is
# locked as it is updated, so a payout chain taking one (``_TAKE``, ``pending -> processing``,
# also under the row's lock) either took it first (it is no longer pending: its check right
# before the provider, ``confirm_payout``, withdraws the payout) or finds it cancelled; either
# way one actor acts on it, and its hold is released once (by whoever ends it, under the
# ledger's unique key).
_CANCEL_PENDING = text(
    """
    UPDATE payments SET status = 'cancelled', failure_reason = :reason, updated_at = now()
    WHERE user_id = :user_id AND status = 'pending'
    RETURNING *
    """
)


def cancel_pending_for_ban(session: Session, *, user_id: int) -> list[int]:
    """A banned member's pending withdrawals are cancelled and their holds released; a payment
    already processing is withdrawn by its payout chain right before the provider, unless the
    provider was called already. Returns the cancelled ids."""
    rows = session.execute(_CANCEL_PENDING, {"user_id": user_id,
                                             "reason": BAN_REASON}).mappings().all()
    for row in rows:
        _release(session, row)
        _status_event(session, row)
    return sorted(row["id"] for row in rows)


@dataclass(frozen=True, slots=True)
class PayoutJob:
    """A payment a payout chain holds the lease of; ``token`` fences every write it makes."""

    payment_id: int
    user_id: int
    amount: Decimal
    method: str
    destination: str
    token: int


# Take the lease: a payable pending payment, or one in processing whose lease expired (its chain
# died or stalled) or is held by the caller's own earlier step (``:token``, a retry of the same
# chain). Each take increments the token, so a stale chain's later writes match no row.
_TAKE = text(
    """
    UPDATE payments p SET status = 'processing', lease_token = p.lease_token + 1,
           lease_until = now() + make_interval(secs => :lease), updated_at = now()
    FROM (SELECT id, status FROM payments WHERE id = :payment_id FOR UPDATE) AS before
    WHERE p.id = before.id AND (
        (p.status = 'pending' AND (NOT p.needs_approval OR p.approved_at IS NOT NULL))
        OR (p.status = 'processing'
            AND (p.lease_until IS NULL OR p.lease_until < now() OR p.lease_token = :token)))
    RETURNING p.*, before.status AS was
    """
)
_RENEW = text(
    """
    UPDATE payments SET lease_until = now() + make_interval(secs => :lease)
    WHERE id = :payment_id AND status = 'processing' AND lease_token = :token
    RETURNING id
    """
)


# Before a payout chain first takes a payment: a member whose withdrawals were frozen or whose
# account was suspended (a ban cancels instead) waits for an admin, an approval given before
# included (suspending and freezing withdraw approvals: ``hold_pending_for_review``; this covers
# one given before that rule); a member whose score reached RISK_REVIEW_SCORE after the payment
# was accepted (a signal between acceptance and the worker, a queue's lag) waits unless an admin
# approved it. The payment's row is locked by this update, as the take's is; a change committed
# after it is too late for this payment to wait for an admin: ``confirm_payout`` then has the
# chain withdraw the payout rather than pay it.
_HOLD_FOR_REVIEW = text(f"""
    UPDATE payments p SET {HOLD}
    FROM users u
    WHERE p.id = :payment_id AND p.status = 'pending' AND u.id = p.user_id
      AND ({MEMBER_ON_HOLD} OR (p.approved_at IS NULL AND u.risk_score >= :review))
      AND {NOT_HELD}
    RETURNING p.id
""")


def start_payout(session: Session, *, payment_id: int, lease_seconds: float,
                 token: int | None = None) -> PayoutJob | None:
    """Take the payout lease for ``lease_seconds`` (``pending -> processing`` the first time; only
    once approved when approval is needed). None when there is nothing this chain may do: final,
    cancelled, waiting for an admin (``_HOLD_FOR_REVIEW`` may have just sent it there), or
    leased by another live chain."""
    if session.execute(_HOLD_FOR_REVIEW, {
            "payment_id": payment_id,
            "review": resources(session).settings.risk_review_score}).first() is not None:
        return None
    row = session.execute(_TAKE, {"payment_id": payment_id, "lease": lease_seconds,
                                  "token": -1 if token is None else token}).mappings().first()
    if row is None:
        return None
    if row["was"] == "pending":
        _status_event(session, row)
    return PayoutJob(row["id"], row["user_id"], row["amount"], row["method"], row["destination"],
                     row["lease_token"])


# Just before the provider is called: the lease renewed, and the member as they are now. The
# users row is read, not locked (the payout chain never locks the member: one lock order).
_CONFIRM = text(f"""
    UPDATE payments p SET lease_until = now() + make_interval(secs => :lease)
    FROM users u
    WHERE p.id = :payment_id AND p.status = 'processing' AND p.lease_token = :token
      AND u.id = p.user_id
    RETURNING {MEMBER_ON_HOLD} AS member_on_hold
""")


def confirm_payout(session: Session, *, job: PayoutJob, lease_seconds: float) -> bool | None:
    """The last step before the provider: renew the lease and say whether the member is on hold
    (suspended, banned or frozen since the payment was accepted, or since an earlier attempt of
    this payout). None when another chain took the lease over (a chain that stalled after its
    take): that chain decides, this one must not call the provider."""
    row = session.execute(_CONFIRM, {"payment_id": job.payment_id, "token": job.token,
                                     "lease": lease_seconds}).first()
    return None if row is None else bool(row.member_on_hold)


def renew_lease(session: Session, *, job: PayoutJob, lease_seconds: float) -> bool:
    """Extend the lease this chain holds (before a retry's wait, or to check it still holds it
    before an irreversible step). False when another chain took it over."""
    return session.execute(_RENEW, {"payment_id": job.payment_id, "token": job.token,
                                    "lease": lease_seconds}).first() is not None


def finish_payout(
    session: Session, *, job: PayoutJob, paid: bool, reference: str | None = None,
    reason: str | None = None,
) -> bool:
    """``processing -> paid | failed`` by the chain holding the lease; failed gives the hold
    back. False (nothing written) when the payment is final or the lease passed to another
    chain: that chain learns the same result from the provider, which is idempotent by key."""
    row = session.execute(
        update(_p).where(_p.c.id == job.payment_id, _p.c.status == "processing",
                         _p.c.lease_token == job.token)
        .values(status="paid" if paid else "failed", provider_reference=reference,
                failure_reason=None if paid else reason, lease_until=None,
                updated_at=text("now()"))
        .returning(*_p.c)
    ).mappings().first()
    if row is None:
        return False
    if not paid:
        _release(session, row)
    _status_event(session, row)
    _outcome_notification(session, row)
    return True


def _outcome_notification(session: Session, row: Any) -> None:
    paid = row["status"] == "paid"
    notify(session, [NewNotification(
        user_id=row["user_id"], type="payment_paid" if paid else "payment_failed",
        title="Withdrawal paid" if paid else "Withdrawal failed",
        body=(f"{row['amount']} sent to {row['destination']}" if paid else
              f"{row['amount']} returned to your balance: {row['failure_reason'] or 'failed'}"),
        data={"paymentId": row["id"], "amount": float(row["amount"]), "status": row["status"]},
    )])


# Payments a payout chain should be working on but is not: in processing with an expired lease
# (its worker died or stalled), or payable and pending (the enqueue after acceptance was lost).
# Each is enqueued at most once per ``older_than`` (``dispatched_at``), so a slow queue does not
# fill up with copies; a copy would be harmless anyway (one chain gets the lease).
_STUCK = text(
    """
    UPDATE payments SET dispatched_at = now()
    WHERE id IN (
        SELECT id FROM payments
        WHERE ((status = 'processing' AND (lease_until IS NULL OR lease_until < now()))
               OR (status = 'pending' AND (NOT needs_approval OR approved_at IS NOT NULL)
                   AND updated_at < now() - make_interval(secs => :older_than)))
          AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => :older_than))
        ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id
    """
)


def stuck_payments(session: Session, *, older_than: float, limit: int = 500) -> list[int]:
    """Claim the payments to enqueue again (see ``_STUCK``)."""
    return sorted(session.execute(_STUCK, {"older_than": older_than, "limit": limit}).scalars())
