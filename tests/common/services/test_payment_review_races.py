"""A member suspended, or whose withdrawals are frozen, while a withdrawal waits: it goes to an
admin, an earlier approval included, whichever of the change and a payout chain taking the
payment reaches the payment's row first (driven in both orders on a real PostgreSQL): the chain
either took it first (its check right before the provider then withdraws the payout:
tests/workers/tasks/test_payouts_lease.py), or finds it waiting for an admin. Never paid behind
the change's back, and the hold is untouched either way."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services import payments
from common.services.accounts import set_user_status
from common.services.ledger import check_ledger
from common.services.payments import (
    MemberOnHold,
    approve_payment,
    cancel_payment,
    reject_payment,
    start_payout,
)
from common.services.risk import set_payouts_frozen
from tests.fixtures.interleave import Background, second_waits_for_first, wait_until_blocked
from tests.fixtures.money_factories import committed_withdrawal

pytestmark = pytest.mark.committed
_OPERATOR = {"actor_id": None, "ip": None, "trace_id": None}


def _suspend(session: Session, user_id: int) -> None:
    set_user_status(session, user_id=user_id, status="suspended", reason="checks", **_OPERATOR)


def _freeze(session: Session, user_id: int) -> None:
    set_payouts_frozen(session, user_id=user_id, frozen=True, reason="checks", audit=_OPERATOR)


def _reactivate(session: Session, user_id: int) -> None:
    set_user_status(session, user_id=user_id, status="active", reason="cleared", **_OPERATOR)


def _unfreeze(session: Session, user_id: int) -> None:
    set_payouts_frozen(session, user_id=user_id, frozen=False, reason="cleared", audit=_OPERATOR)


CHANGES: dict[str, Callable[[Session, int], None]] = {"suspended": _suspend, "frozen": _freeze}
UNDO: dict[str, Callable[[Session, int], None]] = {"suspended": _reactivate, "frozen": _unfreeze}


def _take(session: Session, payment_id: int) -> object:
    return start_payout(session, payment_id=payment_id, lease_seconds=300)


def _payment(engine: Engine, payment_id: int) -> tuple[str, bool, bool, bool]:
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT status, needs_review, needs_approval, approved_at IS NOT NULL FROM payments "
            "WHERE id = :id"), {"id": payment_id}).one()
    with Session(engine) as session:
        assert check_ledger(session) == []
    return row[0], row[1], row[2], row[3]


@pytest.mark.parametrize("change", CHANGES)
def test_an_approved_payment_waits_again_once_the_member_changes(committed: Engine, change: str) -> None:
    user_id, payment_id = committed_withdrawal(committed, amount="150", funds="200")  # over 100
    with Session(committed) as session, session.begin():
        assert approve_payment(session, payment_id=payment_id)
    with Session(committed) as session, session.begin():
        CHANGES[change](session, user_id)
    with Session(committed) as session, session.begin():
        assert _take(session, payment_id) is None  # the approval was for the member as they were
    assert _payment(committed, payment_id) == ("pending", True, True, False)
    with Session(committed) as session, session.begin(), pytest.raises(MemberOnHold):
        approve_payment(session, payment_id=payment_id)  # lift the change first
    with Session(committed) as session, session.begin():
        UNDO[change](session, user_id)
    with Session(committed) as session, session.begin():
        assert approve_payment(session, payment_id=payment_id)  # an admin's new decision stands
        assert _take(session, payment_id) is not None
    with committed.connect() as conn:
        audit = conn.execute(text("SELECT after FROM audit_log WHERE action = "
                                  "'payment.hold_for_review'")).scalar_one()
    assert audit == {"needsReview": True, "because": "suspended" if change == "suspended"
                     else "payouts_frozen", "payments": [payment_id]}


@pytest.mark.parametrize("change", CHANGES)
def test_an_approval_sent_before_the_change_cannot_undo_it(committed: Engine, change: str) -> None:
    """The admin's approval, clicked before the suspension and arriving while it commits (a
    second click, a resend): it waits for the member's row, then finds the member on hold."""
    user_id, payment_id = committed_withdrawal(committed, amount="150", funds="200")
    _, approval = second_waits_for_first(
        committed, lambda s: CHANGES[change](s, user_id),
        lambda s: approve_payment(s, payment_id=payment_id))
    assert isinstance(approval.error, MemberOnHold)
    assert _payment(committed, payment_id) == ("pending", True, True, False)


DECISIONS: dict[str, Callable[[Session, int, int], object]] = {
    "rejected": lambda s, user_id, payment_id: reject_payment(s, payment_id=payment_id,
                                                              reason="no"),
    "cancelled": lambda s, user_id, payment_id: cancel_payment(s, user_id=user_id,
                                                               payment_id=payment_id),
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("decision", DECISIONS)
def test_a_decision_on_the_payment_and_the_change_never_deadlock(committed: Engine, monkeypatch, change: str, decision: str) -> None:  # type: ignore[no-untyped-def]
    """A rejection (or the member's cancellation) gives the hold back to the member's balance
    after it changed the payment; the change holds the member and then wants the payment. Driven
    in the bad order: the decision is paused just before its release, the change starts and
    waits, then the decision goes on. Both must finish (neither aborted as a deadlock)."""
    user_id, payment_id = committed_withdrawal(committed, amount="10", funds="50")
    at_release, go_on = threading.Event(), threading.Event()
    release = payments._release

    def paused(session: Session, row: object) -> None:
        at_release.set()
        assert go_on.wait(20)
        release(session, row)

    monkeypatch.setattr(payments, "_release", paused)
    decided = Background(committed, lambda s: DECISIONS[decision](s, user_id, payment_id)).start()
    assert at_release.wait(20)
    changed = Background(committed, lambda s: CHANGES[change](s, user_id)).start()
    try:
        wait_until_blocked(committed, changed.pid)
    finally:
        go_on.set()
        decided.join()
        changed.join()
    assert decided.error is None and changed.error is None
    status, review, _, _ = _payment(committed, payment_id)
    assert (status, review) == ("failed" if decision == "rejected" else "cancelled", False)


@pytest.mark.parametrize("change", CHANGES)
def test_the_change_first_and_the_payout_chain_finds_it_waiting(committed: Engine, change: str) -> None:
    user_id, payment_id = committed_withdrawal(committed, amount="10", funds="50")
    # The change holds the payment's row, sent to review, while the chain waits for it.
    _, chain = second_waits_for_first(committed, lambda s: CHANGES[change](s, user_id),
                                      lambda s: _take(s, payment_id))
    assert chain.error is None and chain.result is None
    assert _payment(committed, payment_id) == ("pending", True, True, False)


@pytest.mark.parametrize("change", CHANGES)
def test_a_payout_chain_first_goes_on_and_the_change_holds_nothing(committed: Engine, change: str) -> None:
    user_id, payment_id = committed_withdrawal(committed, amount="10", funds="50")
    taken, second = second_waits_for_first(committed, lambda s: _take(s, payment_id),
                                           lambda s: CHANGES[change](s, user_id))
    assert taken is not None  # pending -> processing, committed once the change waited for it
    assert second.error is None
    assert _payment(committed, payment_id) == ("processing", False, False, False)


def test_naming_another_members_payment_to_cancel_locks_nothing_of_theirs(committed: Engine) -> None:
    """A member who cancels someone else's payment id gets 404 without taking that member's row
    lock: the owner's own withdrawal is not held up meanwhile."""
    from common.errors import NotFound
    from tests.fixtures.money_factories import make_funded_user

    owner_id, payment_id = committed_withdrawal(committed, amount="10", funds="50")
    with Session(committed, expire_on_commit=False) as session, session.begin():
        prowler_id = make_funded_user(session, "0").id
    prowler = Session(committed)
    prowler.begin()
    with pytest.raises(NotFound):
        cancel_payment(prowler, user_id=prowler_id, payment_id=payment_id)
    try:  # still inside the prowler's transaction: the owner's row is free
        with committed.connect() as conn:
            conn.execute(text("SET lock_timeout = '1s'"))
            conn.execute(text("SELECT 1 FROM users WHERE id = :id FOR NO KEY UPDATE"), {"id": owner_id})
    finally:
        prowler.rollback()
        prowler.close()


@pytest.mark.parametrize("change", CHANGES)
def test_a_settled_payment_of_a_member_on_hold_answers_as_settled(committed: Engine, change: str) -> None:
    """Approving a payment that is no longer waiting says so (False: "not awaiting approval"),
    whatever the member's state; ``member_on_hold`` is only for one an admin could approve."""
    user_id, payment_id = committed_withdrawal(committed, amount="10", funds="50")
    with Session(committed) as session, session.begin():
        cancel_payment(session, user_id=user_id, payment_id=payment_id)
    with Session(committed) as session, session.begin():
        CHANGES[change](session, user_id)
    with Session(committed) as session, session.begin():
        assert approve_payment(session, payment_id=payment_id) is False
