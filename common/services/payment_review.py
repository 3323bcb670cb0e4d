"""A member's pending withdrawals sent to an admin when the member's state changes: suspended, or
withdrawals frozen (docs/risk.md "What happens at the threshold"; a ban cancels them instead).

Done in the transaction that changes the member, under each payment's row lock, as a ban's
cancel is: a payout chain takes a payment under the same lock, so it either took it first (then
``processing``: the chain's check right before the provider, ``confirm_payout``, finds the member
on hold and withdraws the payout) or finds it waiting for an admin. An
approval given before the change is withdrawn: the admin approved the amount for the member as
they were, not as they are now. The payout worker's own re-check (``start_payout``) stays, for a
score that crosses the threshold after acceptance.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.services.audit import record_audit

_HOLD_PENDING = text(
    """
    UPDATE payments SET needs_review = true, needs_approval = true, approved_at = NULL,
           updated_at = now()
    WHERE user_id = :user_id AND status = 'pending'
      AND NOT (needs_review AND needs_approval AND approved_at IS NULL)
    RETURNING id
    """
)


def hold_pending_for_review(session: Session, *, user_id: int, because: str,
                            audit: dict[str, Any]) -> list[int]:
    """Send the member's pending withdrawals to an admin (``needsReview``, approval needed,
    an earlier approval withdrawn); audited as ``payment.hold_for_review`` naming ``because``.
    Returns the ids of the payments it changed."""
    held = sorted(session.scalars(_HOLD_PENDING, {"user_id": user_id}).all())
    if held:
        record_audit(session, action="payment.hold_for_review", target_type="user",
                     target_id=user_id, before={"status": "pending"},
                     after={"needsReview": True, "because": because, "payments": held}, **audit)
    return held
