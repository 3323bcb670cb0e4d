"""What stands between a member and a payout (docs/risk.md "What happens at the threshold"): a
frozen or banned member is refused before anything is held, whatever their balance; a payment
accepted before the member's score reached RISK_REVIEW_SCORE, or before a freeze, waits for an
admin when the payout worker first comes to take it; the listed-address signal names the address
in one form whichever path saw it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.errors import Forbidden
from common.models import LedgerEntry, Payment
from common.services.payments import (
    FROZEN_MESSAGE,
    MemberOnHold,
    approve_payment,
    request_withdrawal,
    start_payout,
)
from tests.fixtures.money_factories import make_funded_user


def _withdraw(session: Session, user_id: int, ip: str | None = None) -> dict:  # type: ignore[type-arg]
    return request_withdrawal(session, user_id=user_id, amount=Decimal(10), method="paypal",
                              destination=f"gate{user_id}@example.com", minimum=Decimal(5),
                              auto_pay_limit=Decimal(100), ip=ip)


def _set(session: Session, user_id: int, assignments: str) -> None:
    session.execute(text(f"UPDATE users SET {assignments} WHERE id = :id"), {"id": user_id})


def test_a_frozen_member_without_balance_gets_403_not_422(session: Session) -> None:
    user = make_funded_user(session, "0")
    _set(session, user.id, "payouts_frozen = true")
    with pytest.raises(Forbidden) as refused:
        _withdraw(session, user.id)
    assert refused.value.message == FROZEN_MESSAGE


def test_a_member_banned_while_their_request_was_on_its_way_is_refused(session: Session) -> None:
    # The access token outlives the ban for its TTL: the withdrawal's own check under the
    # member's row lock is what stops it (a ban committing later cancels it instead).
    user = make_funded_user(session, "50")
    _set(session, user.id, "status = 'banned'")
    with pytest.raises(Forbidden):
        _withdraw(session, user.id)
    assert session.scalars(select(Payment).where(Payment.user_id == user.id)).all() == []
    assert session.scalars(select(LedgerEntry).where(
        LedgerEntry.user_id == user.id, LedgerEntry.kind == "payout_hold")).all() == []


@pytest.mark.parametrize("after_acceptance", ["risk_score = 60", "payouts_frozen = true",
                                              "status = 'suspended'"])
def test_the_payout_worker_holds_a_payment_the_member_became_risky_after(session: Session, after_acceptance: str) -> None:
    user = make_funded_user(session, "50")
    payment = _withdraw(session, user.id)
    assert payment["needs_review"] is False and payment["needs_approval"] is False
    _set(session, user.id, after_acceptance)  # a signal or a freeze before the worker comes
    assert start_payout(session, payment_id=payment["id"], lease_seconds=300) is None
    held = session.get(Payment, payment["id"])
    session.refresh(held)  # type: ignore[arg-type]
    assert held is not None and held.status == "pending" and held.needs_review and held.needs_approval
    if after_acceptance != "risk_score = 60":  # a suspension or a freeze is lifted first
        with pytest.raises(MemberOnHold):
            approve_payment(session, payment_id=payment["id"])
        _set(session, user.id, "status = 'active', payouts_frozen = false")
    assert approve_payment(session, payment_id=payment["id"])  # the admin's decision stands
    job = start_payout(session, payment_id=payment["id"], lease_seconds=300)
    assert job is not None and job.payment_id == payment["id"]


def test_a_payment_accepted_under_review_is_held_at_acceptance(session: Session) -> None:
    user = make_funded_user(session, "50")
    _set(session, user.id, "risk_score = 50")
    payment = _withdraw(session, user.id)
    assert payment["needs_review"] is True and payment["needs_approval"] is True
    assert start_payout(session, payment_id=payment["id"], lease_seconds=300) is None
