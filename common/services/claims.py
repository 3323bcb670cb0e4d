"""Missing-credit claims (docs/money.md "Clicks", docs/money.md "Claims").

A member claims a click that the network never reported, inside the claim window (at least
``CLAIM_MIN_AGE_SECONDS`` and at most ``CLAIM_MAX_AGE_DAYS`` after the click) and only while the
click has no sale and the offer has not converted since the click (``converted``); one claim per
click (a unique key, so racing requests make one claim). An admin
approves (the claim's sale is made in the admin's transaction and credited by the normal approval
path, ``sales.approve_sale``, exactly once) or rejects it. Both decisions are guarded transitions
(``WHERE status = 'open'``): of twenty concurrent approvals one wins and the others are 409.

The services return rows; the web shapes them (``web/handlers/claims.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.config import CLAIM_NETWORK
from common.effects import enqueue_after_commit
from common.errors import Conflict, InvalidInput, NotFound, declare_codes
from common.events import emit
from common.services.audit import record_audit
from common.services.clicks import is_click_id
from common.services.notifications import NewNotification, notify

# The reasons a claim is refused (ClaimRefused, ClaimConflict), for clients to act on.
declare_codes("click_has_sale", "offer_converted", "claim_too_early",
                            "claim_too_late", "unknown_click", "claim_exists", "claim_decided",
              "payout_unknown")


class ClaimRefused(InvalidInput):
    """A claim the rules do not allow (422); ``code`` names the reason for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, errors=[f"clickId: {message}"], code=code)


class ClaimConflict(Conflict):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def converted(user_id: str, offer_id: str, clicked_at: str) -> str:
    """SQL: whether the user has a sale of the offer, in any status, made at or after the click
    (the columns or parameters named). Such a sale may be the conversion the click led to (a
    network reports a conversion naming another click of the member's, or none), so the click is
    not claimable and its claim not approvable: one conversion is paid once (docs/money.md). A
    rejected one counts too: the network (or an admin) decided that conversion, and a claim must
    not pay what was taken back."""
    return (f"EXISTS (SELECT 1 FROM sales converted WHERE converted.user_id = {user_id} "
            f"AND converted.offer_id = {offer_id} AND converted.created_at >= {clicked_at})")


def claim_refusal(*, clicked_at: dt.datetime, has_sale: bool, offer_converted: bool,
                  now: dt.datetime, min_age_seconds: int, max_age_days: int) -> ClaimRefused | None:
    """Why a click may not be claimed now (None: it may). The one rule behind ``POST /claims``
    and ``claimable`` in ``GET /clicks``."""
    if has_sale:
        return ClaimRefused("click_has_sale", "The click already has a sale")
    if offer_converted:
        return ClaimRefused("offer_converted", "The offer has converted since this click")
    age = now - clicked_at
    if age < dt.timedelta(seconds=min_age_seconds):
        return ClaimRefused("claim_too_early", f"A click can be claimed {min_age_seconds} seconds "
                            "after it, once the network had time to report it")
    if age > dt.timedelta(days=max_age_days):
        return ClaimRefused("claim_too_late", f"A click can be claimed at most {max_age_days} "
                            "days after it")
    return None


_CLICK = text(
    f"""
    SELECT c.public_id, c.offer_id, c.created_at,
           EXISTS (SELECT 1 FROM sales s WHERE s.click_id = c.public_id) AS has_sale,
           {converted("c.user_id", "c.offer_id", "c.created_at")} AS offer_converted,
           EXISTS (SELECT 1 FROM claims cl WHERE cl.click_id = c.public_id) AS has_claim
    FROM clicks c WHERE c.public_id = :click_id AND c.user_id = :user_id
    """
)
_FILE = text(
    """
    INSERT INTO claims (click_id, user_id, offer_id, message)
    VALUES (:click_id, :user_id, :offer_id, :message)
    ON CONFLICT (click_id) DO NOTHING
    RETURNING id
    """
)
# A claim as the API shows it: with its offer's title and the sale its approval made.
CLAIM_ROW = """
    SELECT cl.id, cl.click_id, cl.user_id, cl.offer_id, o.title AS offer_title, cl.status,
           cl.message, cl.amount, cl.resolution, cl.decided_by, cl.created_at, cl.decided_at,
           s.id AS sale_id, s.status AS sale_status
    FROM claims cl JOIN offers o ON o.id = cl.offer_id LEFT JOIN sales s ON s.claim_id = cl.id
"""
_ONE = text(CLAIM_ROW + " WHERE cl.id = :id")


def file_claim(session: Session, *, user_id: int, click_id: str, message: str, now: dt.datetime,
               min_age_seconds: int, max_age_days: int) -> Mapping[str, Any]:
    """A member's claim on one of their clicks: 422 (``unknown_click``, ``click_has_sale``,
    ``offer_converted``, ``claim_too_early``, ``claim_too_late``) or 409 (``claim_exists``)
    otherwise."""
    click = session.execute(_CLICK, {"click_id": click_id, "user_id": user_id}).first() \
        if is_click_id(click_id) else None
    if click is None:
        raise ClaimRefused("unknown_click", "No such click of yours")
    if click.has_claim:
        raise ClaimConflict("claim_exists", "This click already has a claim")
    refusal = claim_refusal(clicked_at=click.created_at, has_sale=click.has_sale,
                            offer_converted=click.offer_converted, now=now,
                            min_age_seconds=min_age_seconds, max_age_days=max_age_days)
    if refusal is not None:
        raise refusal
    claim_id = session.execute(_FILE, {"click_id": click_id, "user_id": user_id,
                                       "offer_id": click.offer_id, "message": message}).scalar()
    if claim_id is None:  # another request claimed it since the read above
        raise ClaimConflict("claim_exists", "This click already has a claim")
    return get_claim(session, claim_id=claim_id)


def get_claim(session: Session, *, claim_id: int) -> Mapping[str, Any]:
    row = session.execute(_ONE, {"id": claim_id}).mappings().first()
    if row is None:
        raise NotFound("Claim not found")
    return dict(row)


# open -> approved, once: the row lock makes concurrent approvals wait, and each one after the
# first finds the claim no longer open. The amount defaults to the offer's payout.
_DECIDE_APPROVE = text(
    """
    UPDATE claims SET status = 'approved', decided_at = now(), decided_by = :actor_id,
        amount = coalesce(CAST(:amount AS numeric), (SELECT payout FROM offers WHERE id = claims.offer_id))
    WHERE id = :id AND status = 'open'
    RETURNING id, user_id, offer_id, click_id, amount
    """
)
_DECIDE_REJECT = text(
    """
    UPDATE claims SET status = 'rejected', decided_at = now(), decided_by = :actor_id,
        resolution = :reason
    WHERE id = :id AND status = 'open'
    RETURNING id, user_id, offer_id, click_id, amount
    """
)
# Run after the claim's transition, which locks its row: a credit that read the claim open holds
# it (``FOR SHARE`` in the credit rule's insert) until it commits, so this statement, with a
# snapshot taken after the lock, sees that credit's sale.
_APPROVAL_CONVERTED = text(
    f"""
    SELECT EXISTS (SELECT 1 FROM sales s WHERE s.click_id = c.public_id) AS has_sale,
           {converted("cl.user_id", "cl.offer_id", "c.created_at")} AS offer_converted
    FROM claims cl JOIN clicks c ON c.public_id = cl.click_id WHERE cl.id = :id
    """
)
# The claim's sale: pending with its hold already over, its commission in the pending balance (as
# a postback's credit), unless the click has a sale (unique click_id: a network's credit that
# committed first, or is committing now and is waited for). The approval path credits it.
_SALE = text(
    f"""
    WITH sale AS (
        INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount,
                           commission_amount, status, hold_until, click_id, claim_id)
        VALUES (:user_id, :offer_id, '{CLAIM_NETWORK}', 'claim:' || CAST(:claim_id AS bigint),
                :amount, :amount, 'pending', now(), :click_id, :claim_id)
        ON CONFLICT DO NOTHING
        RETURNING id, user_id, commission_amount
    ), pending AS (
        UPDATE users SET pending_balance = users.pending_balance + sale.commission_amount
        FROM sale WHERE users.id = sale.user_id
    )
    SELECT id FROM sale
    """
)


def _decided(session: Session, statement: Any, params: dict[str, Any]) -> Any:
    row = session.execute(statement, params).first()
    if row is None:
        current = get_claim(session, claim_id=params["id"])  # NotFound for no such claim
        raise ClaimConflict("claim_decided", f"Claim is {current['status']}, not open")
    return row


_MEMBER_LOCK = text("SELECT 1 FROM users WHERE id = :user_id FOR NO KEY UPDATE")


def approve_claim(session: Session, *, claim_id: int, amount: Decimal | None,
                  audit: dict[str, Any]) -> Mapping[str, Any]:
    """open -> approved, and the claim's sale (credited by ``sales.approve_sale`` after commit,
    or by the beat's next batch if that task is lost). 409 when the claim is not open, its click
    already has a sale, or the offer converted since the click (``offer_converted``: the claim
    stays open); 422 when no amount is given and the offer's payout is zero."""
    claim = _decided(session, _DECIDE_APPROVE, {"id": claim_id, "amount": amount,
                                                 "actor_id": audit.get("actor_id")})
    # Approvals of one member's claims run their conversion check one at a time: two claims on two
    # clicks of one offer approved at once would each miss the other's sale (the member's row is
    # what every approval and credit of theirs locks anyway).
    session.execute(_MEMBER_LOCK, {"user_id": claim.user_id})
    click = session.execute(_APPROVAL_CONVERTED, {"id": claim.id}).one()
    if click.has_sale:
        raise ClaimConflict("click_has_sale", "The click already has a sale")
    if click.offer_converted:
        raise ClaimConflict("offer_converted", "The offer has converted since this click: "
                            "the network reported the conversion")
    if claim.amount <= 0:
        raise InvalidInput("The offer's payout is 0: give the amount to credit", code="payout_unknown",
                           errors=["amount: required when the offer's payout is 0"])
    sale_id = session.execute(_SALE, {"user_id": claim.user_id, "offer_id": claim.offer_id,
                                      "claim_id": claim.id, "amount": claim.amount,
                                      "click_id": claim.click_id}).scalar()
    if sale_id is None:
        raise ClaimConflict("click_has_sale", "The click already has a sale")
    enqueue_after_commit(session, "sales.approve_sale", sale_id)
    _announce(session, claim, "approved", audit, {"saleId": sale_id})
    return get_claim(session, claim_id=claim_id)


def reject_claim(session: Session, *, claim_id: int, reason: str,
                 audit: dict[str, Any]) -> Mapping[str, Any]:
    """open -> rejected with ``reason`` as its resolution; 409 when it is not open."""
    claim = _decided(session, _DECIDE_REJECT, {"id": claim_id, "reason": reason,
                                                "actor_id": audit.get("actor_id")})
    _announce(session, claim, "rejected", audit, {"reason": reason})
    return get_claim(session, claim_id=claim_id)


_TEXT = {"approved": ("Missing-credit claim approved", "will be added to your balance"),
         "rejected": ("Missing-credit claim rejected", "was not credited")}


def _announce(session: Session, claim: Any, status: str, audit: dict[str, Any],
              detail: dict[str, Any]) -> None:
    """The audit row, ``claim:status`` and the member's notification, in the deciding
    transaction (published after its commit)."""
    amount = float(claim.amount) if status == "approved" else None
    record_audit(session, action=f"claim.{'approve' if status == 'approved' else 'reject'}",
                 target_type="claim", target_id=claim.id, before={"status": "open"},
                 after={"status": status, "amount": None if amount is None else str(claim.amount),
                        **detail}, **audit)
    emit(session, event="claim:status", user_id=claim.user_id,
         data={"claimId": claim.id, "status": status, "amount": amount})
    title, outcome = _TEXT[status]
    body = f"Your claim on click {claim.click_id} {outcome}"
    if amount is not None:
        body = f"{claim.amount} from your claim on click {claim.click_id} {outcome}"
    notify(session, [NewNotification(user_id=claim.user_id, type=f"claim_{status}", title=title,
                                     body=body, data={"claimId": claim.id, "amount": amount})])

