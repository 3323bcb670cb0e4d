"""Reversals that arrive early or late, and the decisions that must win (docs/money.md "Sales"):
a reversal before its credit is remembered, a reversal of spent money leaves a debt that later
money pays back, and an admin's rejection is final the moment the admin is answered."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.errors import InvalidInput
from common.models import AuditLog, PostbackLog, Sale, User
from common.services.admin_queue import request_sale_decision
from common.services.ledger import check_ledger, post_entry
from common.services.payments import DEBT_REASON, request_withdrawal, start_payout
from common.services.sales import (
    UserMismatch,
    approve_due_sales,
    approve_sale,
    credit_sale,
    reverse_callback,
    reverse_sale,
)
from tests.fixtures.factories import make_user
from tests.fixtures.money import (
    money_client,  # noqa: F401
    money_settings,  # noqa: F401
)
from tests.fixtures.money_factories import generic_params, make_offer


def _money(session: Session, user_id: int) -> tuple[Decimal, Decimal]:
    session.expire_all()
    user = session.get(User, user_id)
    assert user is not None
    return user.balance, user.pending_balance


def _approved_sale(session: Session, user_id: int, txn: str, amount: str = "10.00") -> int:
    outcome = credit_sale(session, network="testnet", external_id=txn, user_id=user_id,
                          offer_external_id="o1", amount=Decimal(amount), hold_seconds=0)
    assert outcome.sale_id is not None and approve_sale(session, sale_id=outcome.sale_id)
    return outcome.sale_id


def _pending_sale(session: Session, hold: int) -> tuple[int, int]:
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    sale_id = credit_sale(session, network="testnet", external_id="t1", user_id=user.id,
                          offer_external_id="o1", amount=Decimal(10), hold_seconds=hold).sale_id
    assert sale_id is not None
    return user.id, sale_id


def _withdraw(session: Session, user_id: int, amount: str) -> int:
    payment = request_withdrawal(session, user_id=user_id, amount=Decimal(amount), method="paypal",
                                 destination="me@example.com", minimum=Decimal(5),
                                 auto_pay_limit=Decimal(100))
    return int(payment["id"])


async def test_a_reversal_before_its_credit_is_remembered(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    session.commit()
    reversal = generic_params(user_id=user.id, offer_id="o1", txn_id="early", status="2")
    resp = await money_client.get("/api/postbacks/testnet", params=reversal)
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "rejected"
    credit = generic_params(user_id=user.id, offer_id="o1", txn_id="early", amount="5.00")
    resp = await money_client.get("/api/postbacks/testnet", params=credit)
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "rejected"
    assert approve_due_sales(session) == 0
    assert _money(session, user.id) == (Decimal(0), Decimal(0))
    assert session.execute(select(Sale.status)).scalars().all() == ["rejected"]
    outcomes = session.execute(select(PostbackLog.outcome).order_by(PostbackLog.id)).scalars().all()
    assert outcomes == ["reversal_before_credit", "duplicate"]


def test_a_reversal_of_spent_money_fails_the_pending_withdrawal_that_holds_it(session: Session) -> None:
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    sale_id = _approved_sale(session, user.id, "t1", "150.00")
    payment_id = _withdraw(session, user.id, "150.00")   # over the auto-pay limit: waits
    assert reverse_sale(session, sale_id=sale_id) == "reversed"
    assert _money(session, user.id) == (Decimal("0.00"), Decimal(0))
    payment = session.execute(text("SELECT status, failure_reason FROM payments WHERE id = :id"),
                              {"id": payment_id}).one()
    assert tuple(payment) == ("failed", DEBT_REASON)
    debt = session.query(AuditLog).filter_by(action="sale.reversal_debt").one()
    assert debt.after == {"userId": user.id, "commission": "150.00", "balanceAfter": "-150.00",
                          "paymentsFailed": [payment_id]}


def test_a_debt_left_by_a_paid_withdrawal_blocks_withdrawals_and_later_money_pays_it(session: Session) -> None:
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    sale_id = _approved_sale(session, user.id, "t1", "10.00")
    payment_id = _withdraw(session, user.id, "10.00")
    assert start_payout(session, payment_id=payment_id, lease_seconds=60) is not None  # on its way
    assert reverse_sale(session, sale_id=sale_id) == "reversed"
    assert _money(session, user.id) == (Decimal("-10.00"), Decimal(0))
    with pytest.raises(InvalidInput):                     # no withdrawal while in debt
        _withdraw(session, user.id, "5.00")
    _approved_sale(session, user.id, "t2", "4.00")        # later money pays the debt first
    assert _money(session, user.id)[0] == Decimal("-6.00")
    _approved_sale(session, user.id, "t3", "9.00")
    assert _money(session, user.id)[0] == Decimal("3.00")
    assert check_ledger(session) == []


def test_the_ledger_check_allows_a_debt_no_deeper_than_the_reversals(session: Session) -> None:
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    reverse_sale(session, sale_id=_approved_sale(session, user.id, "t1", "1.00"))
    assert check_ledger(session) == []
    post_entry(session, user_id=user.id, amount=Decimal(-1000), kind="adjustment",
               key="bogus", allow_debt=True)
    assert len(check_ledger(session)) == 1
    post_entry(session, user_id=user.id, amount=Decimal(1000), kind="adjustment", key="undo")


def test_a_reversal_naming_another_user_is_refused(session: Session) -> None:
    owner, other = make_user(session), make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    _approved_sale(session, owner.id, "t1", "10.00")
    with pytest.raises(UserMismatch):
        reverse_callback(session, network="testnet", external_id="t1", user_id=other.id,
                         offer_external_id="o1", amount=Decimal(10))
    assert session.execute(select(Sale.status)).scalar_one() == "approved"
    assert _money(session, owner.id)[0] == Decimal("10.00")


def test_an_admin_rejection_wins_over_the_end_of_the_hold(session: Session) -> None:
    user_id, sale_id = _pending_sale(session, hold=0)
    request_sale_decision(session, sale_id=sale_id, decision="reject",
                          audit={"actor_id": None, "ip": None, "trace_id": None})
    # The enqueue after the admin's answer is lost; the beat's batch runs, the hold being over.
    assert approve_due_sales(session) == 0
    assert session.execute(select(Sale.status).where(Sale.id == sale_id)).scalar_one() == "rejected"
    assert _money(session, user_id) == (Decimal(0), Decimal(0))


def test_an_admin_approval_is_applied_by_the_batch_if_its_task_is_lost(session: Session) -> None:
    _, sale_id = _pending_sale(session, hold=86_400)
    request_sale_decision(session, sale_id=sale_id, decision="approve",
                          audit={"actor_id": None, "ip": None, "trace_id": None})
    assert approve_due_sales(session) == 1
    assert session.execute(text("SELECT status FROM sales WHERE id = :id"),
                           {"id": sale_id}).scalar_one() == "approved"


async def test_a_credit_naming_another_user_than_its_sale_is_refused(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    owner, other = make_user(session), make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    session.commit()
    first = generic_params(user_id=owner.id, offer_id="o1", txn_id="t1", amount="5.00")
    assert (await money_client.get("/api/postbacks/testnet", params=first)).status == 200
    forged = generic_params(user_id=other.id, offer_id="o1", txn_id="t1", amount="5.00")
    resp = await money_client.get("/api/postbacks/testnet", params=forged)
    assert resp.status == 422
    outcomes = session.execute(select(PostbackLog.outcome).order_by(PostbackLog.id)).scalars().all()
    assert outcomes == ["credited", "user_mismatch"]
    assert _money(session, other.id) == (Decimal(0), Decimal(0))


async def test_a_reversal_logs_the_requests_trace_id(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    """The write thread runs in the request's context: its log row carries the trace id."""
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    reversal = generic_params(user_id=user.id, offer_id="o1", txn_id="r1", status="2")
    await money_client.get("/api/postbacks/testnet", params=reversal,
                           headers={"X-Trace-ID": "trace-reversal-0001"})
    assert session.execute(select(PostbackLog.trace_id)).scalar_one() == "trace-reversal-0001"


def _claimed_sale(session: Session, user_id: int, offer_id: int) -> tuple[str, int]:
    """A click with an approved claim whose sale is credited: (click id, sale id)."""
    import datetime as dt

    from common.services.claims import approve_claim
    from tests.fixtures.money_factories import make_click

    click_id, _ = make_click(session, user_id, offer_id, age=dt.timedelta(days=2))
    claim_id = session.execute(text(
        "INSERT INTO claims (click_id, user_id, offer_id, message) VALUES (:c, :u, :o, 'm') "
        "RETURNING id"), {"c": click_id, "u": user_id, "o": offer_id}).scalar_one()
    sale_id = approve_claim(session, claim_id=claim_id, amount=None, audit={"actor_id": None})["sale_id"]
    assert approve_sale(session, sale_id=sale_id)
    return click_id, sale_id


def test_the_chargeback_of_a_claimed_conversion_reverses_the_claims_sale(session: Session) -> None:
    """The sync path (``credit_sale``, ``reverse_callback``: the statements of the web's fast
    path): the network's credit naming an approved claim's click is answered ``claimed`` and its
    transaction becomes the claim's sale's; its repeat is a repeat; its chargeback reverses it."""
    user = make_user(session)
    offer_id = make_offer(session, network="testnet", external_id="o1")
    click_id, sale_id = _claimed_sale(session, user.id, offer_id)
    report = {"network": "testnet", "external_id": "net-1", "user_id": user.id,
              "offer_external_id": "o1", "amount": Decimal(10)}
    first = credit_sale(session, **report, hold_seconds=0, click_id=click_id)
    assert (first.sale_id, first.status, first.outcome) == (sale_id, "approved", "claimed")
    again = credit_sale(session, **report, hold_seconds=0, click_id=click_id)
    assert (again.sale_id, again.outcome) == (sale_id, "duplicate")
    other = make_user(session)
    with pytest.raises(UserMismatch):  # the transaction is this user's now
        reverse_callback(session, **{**report, "user_id": other.id})
    reversed_ = reverse_callback(session, **report)
    assert (reversed_.sale_id, reversed_.status, reversed_.outcome) == (sale_id, "reversed", "reversed")
    assert _money(session, user.id) == (0, 0)
    assert check_ledger(session) == []
