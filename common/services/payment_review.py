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

# A member whose withdrawals wait for an admin, and no payout is made for: suspended, banned or
# frozen (``u`` names the users row). One spelling for every statement that asks.
MEMBER_ON_HOLD = "(u.status <> 'active' OR u.payouts_frozen)"
# What sending a pending payment to an admin sets, and the test that it is not there already
# (the statements' payments rows are unaliased in SET and unambiguous in WHERE).
HOLD = "needs_review = true, needs_approval = true, approved_at = NULL, updated_at = now()"
NOT_HELD = "NOT (needs_review AND needs_approval AND approved_at IS NULL)"

_HOLD_PENDING = text(f"""
    UPDATE payments SET {HOLD}
    WHERE user_id = :user_id AND status = 'pending' AND {NOT_HELD}
    RETURNING id
""")


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
