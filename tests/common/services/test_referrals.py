"""Referrals (docs/money.md "Referrals"): a referee's approved commission pays the referrer a share
through the ledger, once per sale, in the approval's own statement; a reversal takes it back;
shared sign-up addresses or payout destinations pay nothing and are recorded for risk."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
import redis
from freezegun import freeze_time
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from common.config import Settings
from common.effects import Resources, after_commit, bind_resources
from common.errors import InvalidInput
from common.models import AuditLog, LedgerEntry, Notification, OutboxEvent, RiskSignal, User
from common.money import to_cents
from common.services.auth import register_user
from common.services.ledger import check_ledger
from common.services.payments import DEBT_REASON, request_withdrawal
from common.services.referrals import ABUSE, referral_amount
from common.services.sales import approve_due_sales, approve_sale, credit_sale, reverse_sale
from common.taskqueue import enqueue
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import fund, make_offer

_n = itertools.count(1)
_HASH = "$2b$04$Ec4r3rYb3gSxO0bBBmHeT.dGxlwP4gMl2U3rjd6E5Yd5bH2XcI9yC"


def _member(session: Session, *, code: str | None = None, ip: str | None = None,
            name: str | None = None) -> User:
    """A member signed up as the API does, from ``ip`` (a fresh address unless given)."""
    n = next(_n)
    return register_user(
        session, email=f"member{n}@example.com", password_hash=_HASH, name=name or f"Member {n}",
        refresh_ttl=3600, ip=ip or f"198.51.100.{n % 250 + 1}", trace_id=None,
        referral_code=code,
    ).user


def _pair(session: Session) -> tuple[User, User]:
    referrer = _member(session, ip="203.0.113.1")
    return referrer, _member(session, code=referrer.referral_code, ip="203.0.113.2")


def _sale(session: Session, user_id: int, txn: str, amount: str = "10.00", hold: int = 0) -> int:
    outcome = credit_sale(session, network="testnet", external_id=txn, user_id=user_id,
                          offer_external_id="o1", amount=Decimal(amount), hold_seconds=hold)
    assert outcome.sale_id is not None
    return outcome.sale_id


def _offer(session: Session) -> None:
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))


def _balance(session: Session, user_id: int) -> Decimal:
    return session.execute(text("SELECT balance FROM users WHERE id = :id"),
                           {"id": user_id}).scalar_one()


def _entries(session: Session, user_id: int) -> list[tuple[str, Decimal, str]]:
    rows = session.execute(select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.idempotency_key)
                           .where(LedgerEntry.user_id == user_id).order_by(LedgerEntry.id))
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _signals(session: Session, kind: str | None = None) -> list[tuple[int, str, dict[str, object]]]:
    rows = session.execute(select(RiskSignal.user_id, RiskSignal.kind, RiskSignal.detail)
                           .order_by(RiskSignal.id))
    return [tuple(r) for r in rows if kind is None or r.kind == kind]  # type: ignore[misc]


# ------------------------------------------------------------------------------ sign-up


def test_every_member_has_a_random_unique_code(session: Session) -> None:
    members = [_member(session) for _ in range(20)] + [make_user(session)]
    codes = [m.referral_code for m in members]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == 10 and set(c) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for c in codes)


def test_a_code_names_the_referrer_once_and_for_all(session: Session) -> None:
    referrer, referee = _pair(session)
    assert referee.referred_by == referrer.id and referrer.referred_by is None
    assert referee.signup_ip == "203.0.113.2"
    other = _member(session)
    with pytest.raises(DBAPIError, match="set once"), session.begin_nested():
        session.execute(text("UPDATE users SET referred_by = :other WHERE id = :id"),
                        {"other": other.id, "id": referee.id})


def test_an_unknown_code_is_refused_and_stores_nothing(session: Session) -> None:
    before = session.execute(text("SELECT count(*) FROM users")).scalar_one()
    with pytest.raises(InvalidInput) as refused:
        _member(session, code="NOSUCHCODE")
    assert refused.value.errors == ["referralCode: no member has this code"]
    assert session.execute(text("SELECT count(*) FROM users")).scalar_one() == before


def test_a_code_is_read_whatever_its_case_and_spaces(session: Session) -> None:
    referrer = _member(session)
    referee = _member(session, code=f"  {referrer.referral_code.lower()} ")
    assert referee.referred_by == referrer.id


# ------------------------------------------------------------------------------ earnings


def test_an_approved_commission_pays_the_referrer_its_share_rounded_down(session: Session) -> None:
    referrer, referee = _pair(session)
    _offer(session)
    sale = _sale(session, referee.id, "t1", "7.79")
    assert approve_sale(session, sale_id=sale)
    assert _entries(session, referrer.id) == [("referral", Decimal("0.77"), f"referral:{sale}")]
    assert _balance(session, referrer.id) == Decimal("0.77")
    assert _balance(session, referee.id) == Decimal("7.79")  # the referee keeps all of theirs
    event = session.execute(select(OutboxEvent.data).where(
        OutboxEvent.event == "balance:updated", OutboxEvent.target_id == referrer.id)).scalar_one()
    assert event == {"newBalance": 0.77, "change": 0.77, "reason": "referral"}
    note = session.execute(select(Notification).where(Notification.user_id == referrer.id)).scalar_one()
    assert (note.type, note.data) == ("referral_earned", {"amount": 0.77, "sales": 1})


def test_one_notification_per_referrer_per_batch_and_one_posting_per_sale(session: Session) -> None:
    referrer = _member(session)
    referees = [_member(session, code=referrer.referral_code) for _ in range(2)]
    other = _member(session)
    _offer(session)
    sales = [_sale(session, r.id, f"t{r.id}-{i}") for r in referees for i in range(3)]
    _sale(session, other.id, "unreferred")
    assert approve_due_sales(session) == 7
    assert [k for k, _, _ in _entries(session, referrer.id)] == ["referral"] * 6
    assert _balance(session, referrer.id) == Decimal("6.00")
    notes = session.execute(select(Notification.type, Notification.data).where(
        Notification.user_id == referrer.id)).all()
    assert [tuple(n) for n in notes] == [("referral_earned", {"amount": 6.0, "sales": 6})]
    # balance:updated once per entry, the balance after each.
    changes = session.execute(select(OutboxEvent.data).where(
        OutboxEvent.event == "balance:updated", OutboxEvent.target_id == referrer.id)
        .order_by(OutboxEvent.id)).scalars().all()
    assert [c["newBalance"] for c in changes] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    # Nothing pays twice: the sales are approved, a second pass finds none.
    for sale in sales:
        assert not approve_sale(session, sale_id=sale)
    assert approve_due_sales(session) == 0
    assert len(_entries(session, referrer.id)) == 6


def test_a_share_under_a_cent_posts_nothing(session: Session) -> None:
    referrer, referee = _pair(session)
    _offer(session)
    approve_sale(session, sale_id=_sale(session, referee.id, "t1", "0.09"))
    assert _entries(session, referrer.id) == []
    assert session.execute(select(Notification).where(Notification.user_id == referrer.id)).first() is None


def test_referral_earnings_earn_no_referral_and_do_not_count_for_leaderboards(session: Session) -> None:
    first = _member(session)
    second = _member(session, code=first.referral_code)
    third = _member(session, code=second.referral_code)
    _offer(session)
    approve_sale(session, sale_id=_sale(session, third.id, "t1", "10.00"))
    assert _entries(session, second.id) == [("referral", Decimal("1.00"), _entries(session, second.id)[0][2])]
    assert _entries(session, first.id) == []  # only a sale commission earns a referral
    deltas = after_commit(session).leaderboard
    assert deltas and {who for _, who, _ in deltas} == {f"{10**19 - 1 - third.id:019d}"}


def test_earnings_stop_when_the_window_after_the_referees_signup_ends(session: Session, settings: Settings) -> None:
    referrer, referee = _pair(session)
    _offer(session)
    signed_up = referee.created_at
    window = dt.timedelta(days=settings.referral_window_days)
    inside, outside = _sale(session, referee.id, "in"), _sale(session, referee.id, "out")
    with freeze_time(signed_up + window - dt.timedelta(seconds=1)):
        approve_sale(session, sale_id=inside)
    with freeze_time(signed_up + window):
        approve_sale(session, sale_id=outside)
    assert _entries(session, referrer.id) == [("referral", Decimal("1.00"), f"referral:{inside}")]
    assert _balance(session, referee.id) == Decimal("20.00")


# ------------------------------------------------------------------------------ reversals


def test_a_reversal_takes_the_referral_back(session: Session) -> None:
    referrer, referee = _pair(session)
    _offer(session)
    sale = _sale(session, referee.id, "t1", "25.00")
    approve_sale(session, sale_id=sale)
    assert reverse_sale(session, sale_id=sale) == "reversed"
    assert _entries(session, referrer.id) == [
        ("referral", Decimal("2.50"), f"referral:{sale}"),
        ("referral_reversal", Decimal("-2.50"), f"referral_reversal:{sale}"),
    ]
    assert _balance(session, referrer.id) == 0
    assert reverse_sale(session, sale_id=sale) == "already_final"
    assert len(_entries(session, referrer.id)) == 2
    event = session.execute(select(OutboxEvent.data).where(
        OutboxEvent.event == "balance:updated", OutboxEvent.target_id == referrer.id)
        .order_by(OutboxEvent.id.desc())).scalars().first()
    assert event == {"newBalance": 0.0, "change": -2.5, "reason": "referral_reversal"}


def test_a_reversal_of_a_referral_already_spent_leaves_a_debt_handled_like_any(session: Session) -> None:
    referrer, referee = _pair(session)
    _offer(session)
    fund(session, referrer.id, "100.00")
    sale = _sale(session, referee.id, "t1", "100.00")
    approve_sale(session, sale_id=sale)
    payment = request_withdrawal(session, user_id=referrer.id, amount=Decimal("110.00"),
                                 method="paypal", destination="referrer@example.com",
                                 minimum=Decimal(5), auto_pay_limit=Decimal(100))
    assert _balance(session, referrer.id) == 0
    reverse_sale(session, sale_id=sale)
    # The pending withdrawal failed and its hold paid the debt back.
    assert _balance(session, referrer.id) == Decimal("100.00")
    status = session.execute(text("SELECT status, failure_reason FROM payments WHERE id = :id"),
                             {"id": payment["id"]}).one()
    assert tuple(status) == ("failed", DEBT_REASON)
    debt = session.execute(select(AuditLog.after).where(
        AuditLog.action == "sale.reversal_debt", AuditLog.target_id == str(referrer.id))).scalar_one()
    assert debt == {"userId": referrer.id, "commission": "10.00", "balanceAfter": "-10.00",
                    "paymentsFailed": [payment["id"]]}
    assert check_ledger(session) == []


def test_a_debt_from_a_referral_reversal_passes_the_ledger_check(session: Session) -> None:
    referrer, referee = _pair(session)
    _offer(session)
    sale = _sale(session, referee.id, "t1", "50.00")
    approve_sale(session, sale_id=sale)
    request_withdrawal(session, user_id=referrer.id, amount=Decimal("5.00"), method="paypal",
                       destination="r@example.com", minimum=Decimal(5), auto_pay_limit=Decimal(100))
    session.execute(text("UPDATE payments SET status = 'processing'"))  # on its way: not failed
    reverse_sale(session, sale_id=sale)
    assert _balance(session, referrer.id) == Decimal("-5.00")
    assert check_ledger(session) == []


# ------------------------------------------------------------------------------ abuse


def test_a_shared_signup_address_pays_nothing_and_is_recorded(session: Session) -> None:
    referrer = _member(session, ip="192.0.2.7")
    referee = _member(session, code=referrer.referral_code, ip="192.0.2.7")
    assert referee.referred_by == referrer.id  # the relation stands; the earnings do not
    _offer(session)
    approve_sale(session, sale_id=_sale(session, referee.id, "t1"))
    approve_sale(session, sale_id=_sale(session, referee.id, "t2"))
    assert _entries(session, referrer.id) == []
    detail = {"referrerId": referrer.id, "refereeId": referee.id, "reason": "shared_signup_ip"}
    assert _signals(session) == [(referee.id, "referral_abuse", detail),
                                 (referrer.id, "referral_abuse", detail)]


def test_a_shared_payout_destination_pays_nothing_and_is_recorded(session: Session) -> None:
    referrer, referee = _pair(session)
    _offer(session)
    first = _sale(session, referee.id, "t1", "10.00")
    approve_sale(session, sale_id=first)  # paid: nothing shared yet
    for user in (referrer, referee):
        request_withdrawal(session, user_id=user.id, amount=Decimal("1.00"), method="paypal",
                           destination="Same@Example.com " if user is referee else "same@example.com",
                           minimum=Decimal(1), auto_pay_limit=Decimal(100))
    detail = {"referrerId": referrer.id, "refereeId": referee.id,
              "reason": "shared_payout_destination"}
    # Recorded when the second of them asks for it, before any later approval (beside risk's own
    # shared_payout_destination of each, docs/risk.md).
    assert _signals(session, ABUSE) == [(referee.id, "referral_abuse", detail),
                                 (referrer.id, "referral_abuse", detail)]
    # The approval checks for itself (payments from before signals were recorded, say).
    session.execute(text("DELETE FROM risk_signals"))
    second = _sale(session, referee.id, "t2", "10.00")
    approve_due_sales(session)
    assert [k for k, _, _ in _entries(session, referrer.id)] == ["referral", "payout_hold"]
    assert _entries(session, referrer.id)[0][2] == f"referral:{first}"
    assert _signals(session, ABUSE) == [(referee.id, "referral_abuse", detail),
                                        (referrer.id, "referral_abuse", detail)]
    assert session.execute(text("SELECT status FROM sales WHERE id = :id"),
                           {"id": second}).scalar_one() == "approved"


# ------------------------------------------------------------------------------ exact amounts


@hsettings(max_examples=40, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cents=st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=6),
       share=st.decimals(min_value=0, max_value=1, places=4))
def test_random_commissions_pay_exactly_their_share_rounded_down(
        session: Session, redis_sync: redis.Redis, settings: Settings, cents: list[int],
        share: Decimal) -> None:
    with session.begin_nested() as example:
        bind_resources(session, Resources(settings.model_copy(update={"referral_share": share}),
                                          redis_sync))
        referrer, referee = _pair(session)
        _offer(session)
        commissions = [Decimal(c) / 100 for c in cents]
        for amount in commissions:
            _sale(session, referee.id, f"h{next(_n)}", str(amount))
        approve_due_sales(session)
        expected = [to_cents(c * share) for c in commissions]
        assert expected == [referral_amount(c, share) for c in commissions]
        got = [amount for _, amount, _ in _entries(session, referrer.id)]
        assert got == [e for e in expected if e > 0]
        assert _balance(session, referrer.id) == sum(expected, Decimal(0))
        assert check_ledger(session) == []
        example.rollback()


# ------------------------------------------------------------------------------ deliveries


@pytest.mark.committed
def test_the_approval_task_delivered_three_times_pays_the_referrer_once(celery_worker, committed: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import time

    from celery.worker import state

    with Session(committed, expire_on_commit=False) as session, session.begin():
        referrer, referee = _pair(session)
        _offer(session)
        sale = _sale(session, referee.id, "t1", "30.00")
    for _ in range(3):
        enqueue("sales.approve_sale", sale)
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + 20
    while True:
        with committed.connect() as conn:
            status = conn.execute(text("SELECT status FROM sales")).scalar_one()
        if status == "approved" and client.llen("sales") == 0 and not state.active_requests:
            break
        assert time.monotonic() < deadline, "the approvals did not settle"
        time.sleep(0.05)
    client.close()
    with committed.connect() as conn:
        rows = conn.execute(text("SELECT kind, amount FROM ledger_entries WHERE user_id = :id"),
                            {"id": referrer.id}).all()
        assert [tuple(r) for r in rows] == [("referral", Decimal("3.00"))]
        notes = conn.execute(text("SELECT count(*) FROM notifications WHERE user_id = :id"),
                             {"id": referrer.id}).scalar_one()
        assert notes == 1


def test_an_ipv4_mapped_address_is_the_ipv4_address() -> None:
    """A dual-stack socket shows an IPv4 client as ::ffff:a.b.c.d: the same sign-up address, or
    the shared-address rule would pay a pair it must not."""
    from common.services.referrals import signup_address

    assert signup_address("::ffff:192.0.2.77") == signup_address("192.0.2.77") == "192.0.2.77"
    assert signup_address(" 2001:DB8::1 ") == "2001:db8::1"
    assert signup_address("not an ip") is None


def test_short_names_are_masked_too() -> None:
    from web.handlers.referrals import masked

    assert (masked("Joanna"), masked("Jo"), masked("J"), masked("")) == ("Jo***", "J***", "J***", "***")
