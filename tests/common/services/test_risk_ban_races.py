"""A ban cancels the member's pending withdrawals and releases their holds exactly once, whichever
of the ban and a payout chain taking the payment reaches the payment's row first (driven in both
orders on a real PostgreSQL): one actor acts on the payment."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.accounts import set_user_status
from common.services.ledger import check_ledger
from common.services.payments import BAN_REASON, start_payout
from tests.fixtures.interleave import second_waits_for_first
from tests.fixtures.money_factories import committed_withdrawal

pytestmark = pytest.mark.committed
_OPERATOR = {"actor_id": None, "ip": None, "trace_id": None}


def _ban(session: Session, user_id: int) -> None:
    set_user_status(session, user_id=user_id, status="banned", reason="fraud", **_OPERATOR)


def _take(session: Session, payment_id: int) -> object:
    return start_payout(session, payment_id=payment_id, lease_seconds=300)


def _state(engine: Engine, user_id: int, payment_id: int) -> tuple[str, Decimal, int]:
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM payments WHERE id = :id"),
                              {"id": payment_id}).scalar_one()
        balance = conn.execute(text("SELECT balance FROM users WHERE id = :id"),
                               {"id": user_id}).scalar_one()
        releases = conn.execute(text(
            "SELECT count(*) FROM ledger_entries WHERE kind = 'payout_release' "
            "AND reference_id = :id"), {"id": payment_id}).scalar_one()
    with Session(engine) as session:
        assert check_ledger(session) == []
    return status, balance, releases


def test_a_ban_first_cancels_and_the_payout_chain_finds_nothing(committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, amount="10", funds="50")
    # The ban holds the payment's row, cancelled, while the chain waits for it.
    _, chain = second_waits_for_first(committed, lambda s: _ban(s, user_id),
                                      lambda s: _take(s, payment_id))
    assert chain.error is None and chain.result is None
    assert _state(committed, user_id, payment_id) == ("cancelled", Decimal("50.00"), 1)
    with committed.connect() as conn:
        assert conn.execute(text("SELECT failure_reason FROM payments")).scalar_one() == BAN_REASON
        audit = conn.execute(text("SELECT after FROM audit_log WHERE action = "
                                  "'payment.cancel_on_ban'")).scalar_one()
    assert audit == {"status": "cancelled", "payments": [payment_id]}


def test_a_payout_chain_first_goes_on_and_the_ban_cancels_nothing(committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, amount="10", funds="50")
    taken, ban = second_waits_for_first(committed, lambda s: _take(s, payment_id),
                                        lambda s: _ban(s, user_id))
    assert taken is not None  # pending -> processing, committed once the ban waited for it
    assert ban.error is None
    assert _state(committed, user_id, payment_id) == ("processing", Decimal("40.00"), 0)


def test_a_ban_releases_every_pending_withdrawal_once(committed: Engine) -> None:
    user_id, first = committed_withdrawal(committed, amount="10", funds="50")
    with Session(committed) as session, session.begin():
        from common.services.payments import request_withdrawal

        second = request_withdrawal(session, user_id=user_id, amount=Decimal(20), method="paypal",
                                    destination="me@example.com", minimum=Decimal(5),
                                    auto_pay_limit=Decimal(100))["id"]
    for _ in range(2):  # banning again changes nothing
        with Session(committed) as session, session.begin():
            _ban(session, user_id)
    assert _state(committed, user_id, first) == ("cancelled", Decimal("50.00"), 1)
    assert _state(committed, user_id, second)[2] == 1


def test_a_ban_first_refuses_the_withdrawal_that_was_on_its_way(committed: Engine) -> None:
    # The member's access token outlives the ban: their request reaches the withdrawal while the
    # ban holds the member's row. It must not be accepted after the ban's cancellation ran.
    from common.errors import Forbidden
    from common.services.payments import request_withdrawal
    from tests.fixtures.money_factories import make_funded_user

    with Session(committed, expire_on_commit=False) as session, session.begin():
        user_id = make_funded_user(session, "50").id
    # The ban holds the member's row while the withdrawal waits for it.
    _, withdrawal = second_waits_for_first(
        committed, lambda s: _ban(s, user_id),
        lambda s: request_withdrawal(s, user_id=user_id, amount=Decimal(10), method="paypal",
                                     destination="me@example.com", minimum=Decimal(5),
                                     auto_pay_limit=Decimal(100)))
    assert isinstance(withdrawal.error, Forbidden)
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar_one() == 0
        assert conn.execute(text("SELECT balance FROM users WHERE id = :id"),
                            {"id": user_id}).scalar_one() == Decimal("50.00")


def test_accounts_asking_for_one_destination_at_once_are_still_linked(committed: Engine) -> None:
    # Each request compares its destination with the payments it can see: two at the same moment
    # would each miss the other's uncommitted one, so the second waits for the first to commit.
    from common.services.payments import request_withdrawal
    from tests.fixtures.money_factories import make_funded_user

    with Session(committed, expire_on_commit=False) as session, session.begin():
        first, second = (make_funded_user(session, "50").id for _ in range(2))

    def withdraw(session: Session, user_id: int) -> object:
        return request_withdrawal(session, user_id=user_id, amount=Decimal(10), method="paypal",
                                  destination="farm@example.com", minimum=Decimal(5),
                                  auto_pay_limit=Decimal(100))

    _, other = second_waits_for_first(committed, lambda s: withdraw(s, first),
                                      lambda s: withdraw(s, second), timeout=3)
    assert other.error is None
    with committed.connect() as conn:
        linked = conn.execute(text("SELECT user_id FROM risk_signals WHERE kind = "
                                   "'shared_payout_destination' ORDER BY user_id")).scalars().all()
    assert linked == [first, second]
