"""Edges of the money rules that mutation testing (bin/mutate, docs/testing.md) found untested:
each test names the rule it holds, and kills the mutants listed in docs/testing.md."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from common.errors import Conflict, NotFound
from common.money import cents_from_json
from common.services.payments import (
    approve_payment,
    cancel_payment,
    finish_payout,
    get_payment,
    reject_payment,
    request_withdrawal,
    start_payout,
    stuck_payments,
)
from tests.fixtures.money_factories import make_funded_user


def _withdraw(session: Session, user_id: int, amount: str) -> int:
    """A withdrawal over the auto-pay limit of 100: it waits for an admin."""
    return request_withdrawal(
        session, user_id=user_id, amount=Decimal(amount), method="paypal",
        destination="me@example.com", minimum=Decimal(5), auto_pay_limit=Decimal(100))["id"]


def _payment(session: Session, payment_id: int) -> dict[str, object]:
    return dict(session.execute(text("SELECT * FROM payments WHERE id = :id"),
                                {"id": payment_id}).mappings().one())


def _balance(session: Session, user_id: int) -> Decimal:
    return session.execute(text("SELECT balance FROM users WHERE id = :id"),
                           {"id": user_id}).scalar_one()


def test_an_admin_approves_only_that_payment_once_and_only_while_it_waits(session: Session) -> None:
    user = make_funded_user(session, "1000")
    waiting = _withdraw(session, user.id, "150")
    other = _withdraw(session, user.id, "160")
    auto = _withdraw(session, user.id, "50")      # under the limit: no approval to give
    cancelled = _withdraw(session, user.id, "170")
    cancel_payment(session, user_id=user.id, payment_id=cancelled)

    assert approve_payment(session, payment_id=waiting) is True
    assert _payment(session, waiting)["approved_at"] is not None
    assert _payment(session, other)["approved_at"] is None       # the other one still waits
    assert approve_payment(session, payment_id=waiting) is False  # a second approval: nothing
    assert approve_payment(session, payment_id=auto) is False
    assert _payment(session, auto)["approved_at"] is None
    assert approve_payment(session, payment_id=cancelled) is False
    assert _payment(session, cancelled)["approved_at"] is None


def test_an_approval_touches_the_payment_so_the_sweep_does_not_take_it_for_a_lost_enqueue(
    session: Session,
) -> None:
    user = make_funded_user(session, "1000")
    payment_id = _withdraw(session, user.id, "150")
    # Accepted an hour ago, approved now: the approval's own enqueue is on its way.
    session.execute(text("UPDATE payments SET updated_at = now() - interval '1 hour' "
                         "WHERE id = :id"), {"id": payment_id})
    assert approve_payment(session, payment_id=payment_id)
    assert payment_id not in stuck_payments(session, older_than=60)


def test_an_admin_rejection_fails_a_pending_payment_and_gives_the_hold_back_once(
    session: Session,
) -> None:
    user = make_funded_user(session, "1000")
    payment_id = _withdraw(session, user.id, "150")
    other = _withdraw(session, user.id, "160")
    assert _balance(session, user.id) == Decimal("690.00")

    assert reject_payment(session, payment_id=payment_id, reason="fraud check") is True
    row = _payment(session, payment_id)
    assert (row["status"], row["failure_reason"]) == ("failed", "fraud check")
    assert _payment(session, other)["status"] == "pending"
    assert _balance(session, user.id) == Decimal("840.00")
    release = session.execute(text(
        "SELECT amount, kind, reference_type, reference_id FROM ledger_entries "
        "WHERE idempotency_key = :k"), {"k": f"payout_release:{payment_id}"}).one()
    assert tuple(release) == (Decimal("150.00"), "payout_release", "payment", payment_id)
    note = session.execute(text(
        "SELECT type, title, body FROM notifications WHERE user_id = :u"), {"u": user.id}).one()
    assert tuple(note) == ("payment_failed", "Withdrawal failed",
                           "150.00 returned to your balance: fraud check")
    events = session.execute(text(
        "SELECT data FROM outbox WHERE target_id = :u AND event = 'payment:status' "
        "ORDER BY id"), {"u": user.id}).scalars().all()
    assert events[-1] == {"paymentId": payment_id, "status": "failed", "amount": 150.0}

    # Already final: a second rejection (or one of a cancelled payment) changes nothing.
    assert reject_payment(session, payment_id=payment_id, reason="again") is False
    cancel_payment(session, user_id=user.id, payment_id=other)
    assert reject_payment(session, payment_id=other, reason="late") is False
    assert _payment(session, other)["status"] == "cancelled"
    assert _balance(session, user.id) == Decimal("1000.00")


def test_a_user_reads_the_payment_asked_for_and_only_their_own(session: Session) -> None:
    user = make_funded_user(session, "1000")
    stranger = make_funded_user(session, "1000")
    first = _withdraw(session, user.id, "150")
    second = _withdraw(session, user.id, "20")
    assert get_payment(session, user_id=user.id, payment_id=second)["amount"] == Decimal("20.00")
    assert get_payment(session, user_id=user.id, payment_id=first)["amount"] == Decimal("150.00")
    with pytest.raises(NotFound, match=r"^Payment not found$"):
        get_payment(session, user_id=stranger.id, payment_id=first)


def test_a_cancellation_dates_the_payment(session: Session) -> None:
    """``updatedAt`` in the API's Payment says when the status last changed."""
    user = make_funded_user(session, "1000")
    payment_id = _withdraw(session, user.id, "150")
    session.execute(text("UPDATE payments SET updated_at = now() - interval '1 hour' "
                         "WHERE id = :id"), {"id": payment_id})
    row = cancel_payment(session, user_id=user.id, payment_id=payment_id)
    now = session.execute(text("SELECT now()")).scalar_one()
    assert row["updated_at"] == now
    assert _payment(session, payment_id)["updated_at"] == now


def test_a_user_cancels_only_the_payment_named_and_only_their_own(session: Session) -> None:
    user = make_funded_user(session, "1000")
    stranger = make_funded_user(session, "1000")
    first = _withdraw(session, user.id, "150")
    second = _withdraw(session, user.id, "20")
    cancel_payment(session, user_id=user.id, payment_id=second)
    assert _payment(session, first)["status"] == "pending"
    assert _balance(session, user.id) == Decimal("850.00")   # only the 20 came back
    with pytest.raises(NotFound):
        cancel_payment(session, user_id=stranger.id, payment_id=first)
    assert _payment(session, first)["status"] == "pending"
    with pytest.raises(Conflict, match=r"^Payment is cancelled; only a pending payment"):
        cancel_payment(session, user_id=user.id, payment_id=second)


def _notes(session: Session, user_id: int) -> list[tuple[object, ...]]:
    return [tuple(r) for r in session.execute(text(
        "SELECT type, title, body, data FROM notifications WHERE user_id = :u ORDER BY id"),
        {"u": user_id})]


def _take(session: Session, payment_id: int):  # type: ignore[no-untyped-def]
    job = start_payout(session, payment_id=payment_id, lease_seconds=300)
    assert job is not None
    return job


def test_a_payout_result_is_written_to_that_payment_with_its_reference_and_notification(
    session: Session,
) -> None:
    user = make_funded_user(session, "1000")
    paid_id, failed_id, reasonless_id = (_withdraw(session, user.id, a) for a in ("20", "30", "40"))
    paid, failed, reasonless = (_take(session, p) for p in (paid_id, failed_id, reasonless_id))
    session.execute(text("UPDATE payments SET updated_at = now() - interval '1 hour' "
                         "WHERE user_id = :u"), {"u": user.id})
    now = session.execute(text("SELECT now()")).scalar_one()

    assert finish_payout(session, job=paid, paid=True, reference="ref-1", reason="ignored")
    row = _payment(session, paid_id)
    assert (row["status"], row["provider_reference"], row["failure_reason"], row["lease_until"],
            row["updated_at"]) == ("paid", "ref-1", None, None, now)
    assert _payment(session, failed_id)["status"] == "processing"   # the others are untouched
    assert _payment(session, reasonless_id)["status"] == "processing"

    assert finish_payout(session, job=failed, paid=False, reference="ref-2", reason="declined")
    row = _payment(session, failed_id)
    assert (row["status"], row["provider_reference"], row["failure_reason"], row["lease_until"],
            row["updated_at"]) == ("failed", "ref-2", "declined", None, now)
    assert finish_payout(session, job=reasonless, paid=False)
    assert _balance(session, user.id) == Decimal("980.00")   # both failures gave the hold back

    assert _notes(session, user.id) == [
        ("payment_paid", "Withdrawal paid", "20.00 sent to me@example.com",
         {"paymentId": paid_id, "amount": 20.0, "status": "paid"}),
        ("payment_failed", "Withdrawal failed", "30.00 returned to your balance: declined",
         {"paymentId": failed_id, "amount": 30.0, "status": "failed"}),
        ("payment_failed", "Withdrawal failed", "40.00 returned to your balance: failed",
         {"paymentId": reasonless_id, "amount": 40.0, "status": "failed"}),
    ]


def test_a_chain_whose_lease_was_taken_over_cannot_write_the_result(session: Session) -> None:
    user = make_funded_user(session, "1000")
    payment_id = _withdraw(session, user.id, "20")
    stale = _take(session, payment_id)
    session.execute(text("UPDATE payments SET lease_until = now() - interval '1 second' "
                         "WHERE id = :id"), {"id": payment_id})
    holder = _take(session, payment_id)
    assert holder.token > stale.token
    assert finish_payout(session, job=stale, paid=False, reason="stale") is False
    assert _payment(session, payment_id)["status"] == "processing"
    assert _balance(session, user.id) == Decimal("980.00")
    assert finish_payout(session, job=holder, paid=True, reference="ref") is True
    assert finish_payout(session, job=holder, paid=False, reason="twice") is False
    assert _payment(session, payment_id)["status"] == "paid"


def test_payout_checkpoints_do_nothing_until_a_drill_installs_a_hook() -> None:
    """The points the real-worker tests SIGKILL a worker at (tests/fixtures/drill_app.py): inert in
    production, and a hook sees each point's name and payment."""
    from workers.checkpoints import checkpoint, install

    seen: list[tuple[str, int]] = []
    checkpoint("before_provider", 7)  # no hook: nothing happens
    install(lambda name, payment_id: seen.append((name, payment_id)))
    try:
        checkpoint("before_provider", 7)
        checkpoint("after_provider", 8)
    finally:
        install(None)
    checkpoint("before_commit", 9)
    assert seen == [("before_provider", 7), ("after_provider", 8)]


def test_taking_a_pending_payment_announces_processing_once(session: Session) -> None:
    """``payment:status processing`` when the payment leaves pending; a chain taking over an
    expired lease changes no status and announces nothing."""
    user = make_funded_user(session, "1000")
    payment_id = _withdraw(session, user.id, "20")

    def statuses() -> list[str]:
        return [d["status"] for d in session.execute(text(
            "SELECT data FROM outbox WHERE target_id = :u AND event = 'payment:status' "
            "ORDER BY id"), {"u": user.id}).scalars()]

    assert statuses() == ["pending"]
    _take(session, payment_id)
    assert statuses() == ["pending", "processing"]
    session.execute(text("UPDATE payments SET lease_until = now() - interval '1 second' "
                         "WHERE id = :id"), {"id": payment_id})
    _take(session, payment_id)
    assert statuses() == ["pending", "processing"]


def test_the_api_payment_names_its_fields_as_documented(session: Session) -> None:
    from common.services.payments import payment_json

    user = make_funded_user(session, "1000")
    payment_id = _withdraw(session, user.id, "20")
    body = payment_json(_payment(session, payment_id))
    assert set(body) == {"id", "amount", "method", "destination", "status", "failureReason",
                         "needsReview", "createdAt", "updatedAt"}
    assert body["createdAt"] is not None and body["updatedAt"] is not None


# --- sales: the edges surviving mutants of common/services/sales.py showed untested -------------

def _sale_row(session: Session, sale_id: int) -> dict[str, object]:
    return dict(session.execute(text("SELECT * FROM sales WHERE id = :id"), {"id": sale_id})
                .mappings().one())


def test_a_credit_says_credited_and_keeps_the_network_amount(session: Session) -> None:
    from common.services.sales import credit_sale
    from tests.fixtures.factories import make_user
    from tests.fixtures.money_factories import make_offer

    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal("0.5"))
    outcome = credit_sale(session, network="testnet", external_id="t1", user_id=user.id,
                          offer_external_id="o1", amount=Decimal("0.50"), hold_seconds=0)
    assert (outcome.status, outcome.outcome) == ("pending", "credited")
    row = _sale_row(session, outcome.sale_id or 0)
    assert (row["sale_amount"], row["commission_amount"]) == (Decimal("0.50"), Decimal("0.25"))


def test_reversals_say_what_they_did_and_post_against_the_sale(session: Session) -> None:
    from common.models import AuditLog
    from common.services.payments import request_withdrawal, start_payout
    from common.services.sales import approve_sale, credit_sale, reverse_callback, reverse_sale
    from tests.fixtures.factories import make_user
    from tests.fixtures.money_factories import make_offer

    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    pending = credit_sale(session, network="testnet", external_id="p", user_id=user.id,
                          offer_external_id="o1", amount=Decimal(3), hold_seconds=0).sale_id
    assert reverse_sale(session, sale_id=pending or 0) == "rejected"
    approved = credit_sale(session, network="testnet", external_id="a", user_id=user.id,
                           offer_external_id="o1", amount=Decimal(10), hold_seconds=0).sale_id
    assert approved is not None and approve_sale(session, sale_id=approved)
    payment = request_withdrawal(session, user_id=user.id, amount=Decimal(10), method="paypal",
                                 destination="me@example.com", minimum=Decimal(5),
                                 auto_pay_limit=Decimal(100))
    assert start_payout(session, payment_id=payment["id"], lease_seconds=60) is not None
    assert reverse_sale(session, sale_id=approved) == "reversed"
    entry = session.execute(text(
        "SELECT kind, amount, reference_type, reference_id FROM ledger_entries "
        "WHERE idempotency_key = :k"), {"k": f"sale_reversal:{approved}"}).one()
    assert tuple(entry) == ("sale_reversal", Decimal("-10.00"), "sale", approved)
    debt = session.query(AuditLog).filter_by(action="sale.reversal_debt").one()
    assert (debt.target_type, debt.target_id) == ("user", str(user.id))
    # Early, unknown and repeated reversals: each says which it was, with the sale it concerns.
    early = reverse_callback(session, network="testnet", external_id="e", user_id=user.id,
                             offer_external_id="o1", amount=Decimal(2))
    assert early.outcome == "reversal_before_credit" and early.status == "rejected"
    assert early.sale_id == session.execute(text(
        "SELECT id FROM sales WHERE external_id = 'e'")).scalar_one()
    nowhere = reverse_callback(session, network="testnet", external_id="x", user_id=user.id,
                               offer_external_id="no-such-offer", amount=Decimal(2))
    assert (nowhere.sale_id, nowhere.outcome) == (None, "unknown_sale")
    again = reverse_callback(session, network="testnet", external_id="a", user_id=user.id,
                             offer_external_id="o1", amount=Decimal(10))
    assert (again.sale_id, again.status, again.outcome) == (approved, "reversed", "already_final")


def test_a_sale_with_no_commission_is_reversed_without_a_posting(session: Session) -> None:
    from common.services.sales import approve_sale, credit_sale, reverse_sale
    from tests.fixtures.factories import make_user
    from tests.fixtures.money_factories import make_offer

    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(0))
    sale_id = credit_sale(session, network="testnet", external_id="z", user_id=user.id,
                          offer_external_id="o1", amount=Decimal(5), hold_seconds=0).sale_id
    assert sale_id is not None and approve_sale(session, sale_id=sale_id)
    assert reverse_sale(session, sale_id=sale_id) == "reversed"
    assert session.execute(text("SELECT count(*) FROM ledger_entries WHERE user_id = :u"),
                           {"u": user.id}).scalar_one() == 0


@pytest.mark.committed
@pytest.mark.parametrize("rival_is_another_user", [False, True])
def test_a_credit_racing_another_for_its_transaction_answers_with_that_sale(committed, monkeypatch: pytest.MonkeyPatch, rival_is_another_user: bool) -> None:  # type: ignore[no-untyped-def]
    """The sync credit path's race branch: another callback for the same transaction id commits
    between this one's lookup and its insert; the insert does nothing and the answer is the
    other's sale, a repeat."""
    from common.services import sales
    from tests.fixtures.factories import make_user
    from tests.fixtures.money_factories import make_offer

    with Session(committed) as setup, setup.begin():
        user_id = make_user(setup).id
        rival_id = make_user(setup).id if rival_is_another_user else user_id
        make_offer(setup, network="testnet", external_id="o1", user_share=Decimal(1))
    plan = sales.plan_credit
    other: list[int] = []

    def plan_then_lose_the_race(found, request):  # type: ignore[no-untyped-def]
        planned = plan(found, request)
        if not other:  # the rival (which plans through here too) commits first, once
            other.append(0)
            with Session(committed) as rival, rival.begin():
                other[0] = sales.credit_sale(
                    rival, network="testnet", external_id="t1", user_id=rival_id,
                    offer_external_id="o1", amount=Decimal(4), hold_seconds=0).sale_id or 0
        return planned

    monkeypatch.setattr(sales, "plan_credit", plan_then_lose_the_race)

    def credit() -> sales.SaleOutcome:
        with Session(committed) as session, session.begin():
            return sales.credit_sale(session, network="testnet", external_id="t1",
                                     user_id=user_id, offer_external_id="o1",
                                     amount=Decimal(4), hold_seconds=0)

    if rival_is_another_user:  # the race's loser names another user: refused, not a repeat
        with pytest.raises(sales.UserMismatch):
            credit()
    else:
        outcome = credit()
        assert (outcome.sale_id, outcome.status, outcome.outcome) == (
            other[0], "pending", "duplicate")
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sales")).scalar_one() == 1
        assert conn.execute(text("SELECT pending_balance FROM users WHERE id = :u"),
                            {"u": rival_id}).scalar_one() == Decimal("4.00")


@given(st.decimals(min_value=Decimal("-999999999999.99"), max_value=Decimal("999999999999.99"),
                   places=2, allow_nan=False, allow_infinity=False))
def test_an_amount_read_back_from_json_is_exact(amount: Decimal) -> None:
    """A NUMERIC(14,2) in a jsonb comes back as a float: its shortest repr is the amount."""
    assert cents_from_json(json.loads(str(amount))) == amount
