"""Risk signals (docs/risk.md): each from the scenario that makes it, recorded once per fact, and
none at all with RISK_ENABLED=false."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest
import redis
from freezegun import freeze_time
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.effects import Resources, bind_resources
from common.models import RiskSignal, User
from common.services.auth import register_user, sign_in
from common.services.payments import request_withdrawal
from common.services.sales import credit_sale, reverse_callback
from tests.fixtures.money_factories import make_click, make_funded_user, make_offer

_n = itertools.count(1)
_HASH = "$2b$04$Ec4r3rYb3gSxO0bBBmHeT.dGxlwP4gMl2U3rjd6E5Yd5bH2XcI9yC"


@pytest.fixture
def risky(session: Session, settings: Settings, redis_sync: redis.Redis):  # type: ignore[no-untyped-def]
    """Bind the session to the test settings with some risk settings changed."""
    def bind(**changes: Any) -> Settings:
        changed = settings.model_copy(update=changes)
        bind_resources(session, Resources(changed, redis_sync))
        return changed
    return bind


def _signals(session: Session, kind: str, user_id: int | None = None) -> list[RiskSignal]:
    stmt = select(RiskSignal).where(RiskSignal.kind == kind).order_by(RiskSignal.id)
    if user_id is not None:
        stmt = stmt.where(RiskSignal.user_id == user_id)
    return list(session.scalars(stmt))


def _score(session: Session, user_id: int) -> Decimal:
    return session.execute(text("SELECT risk_score FROM users WHERE id = :id"),
                           {"id": user_id}).scalar_one()


def _register(session: Session, ip: str) -> User:
    n = next(_n)
    return register_user(session, email=f"risk{n}@example.com", password_hash=_HASH,
                         name=f"Risk {n}", refresh_ttl=3600, ip=ip, trace_id=None).user


def _credit(session: Session, user_id: int, txn: str, click_id: str | None = None) -> int:
    outcome = credit_sale(session, network="testnet", external_id=txn, user_id=user_id,
                          offer_external_id="o1", amount=Decimal(10), hold_seconds=3600,
                          click_id=click_id)
    assert outcome.sale_id is not None, outcome
    return outcome.sale_id


def test_shared_signup_ip_needs_n_accounts_within_a_day(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_shared_ip_accounts=3)
    first, second = _register(session, "192.0.2.50"), _register(session, "192.0.2.50")
    assert _signals(session, "shared_signup_ip") == []
    third = _register(session, "192.0.2.50")
    flagged = _signals(session, "shared_signup_ip")
    assert sorted(s.user_id for s in flagged) == sorted([first.id, second.id, third.id])
    assert flagged[0].detail == {"ip": "192.0.2.50", "accounts": 3}
    assert _score(session, third.id) == Decimal(20)
    # The fourth is flagged too; the first three are not flagged again.
    fourth = _register(session, "192.0.2.50")
    assert [s.user_id for s in _signals(session, "shared_signup_ip")][3:] == [fourth.id]
    assert _score(session, first.id) == Decimal(20)


def test_shared_signup_ip_outside_the_day_does_not_count(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_shared_ip_accounts=3)
    old = _register(session, "192.0.2.60")
    session.execute(text("UPDATE users SET created_at = now() - interval '25 hours' WHERE id = :id"),
                    {"id": old.id})
    _register(session, "192.0.2.60")
    _register(session, "192.0.2.60")
    assert _signals(session, "shared_signup_ip") == []


def test_listed_ip_at_signup_login_and_withdrawal_once_per_address(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_blocked_cidrs="203.0.113.0/24, 2001:db8::/32")
    user = _register(session, "203.0.113.9")
    sign_in(session, user_id=user.id, refresh_ttl=3600, ip="203.0.113.9", trace_id=None)
    sign_in(session, user_id=user.id, refresh_ttl=3600, ip="::ffff:203.0.113.10", trace_id=None)
    sign_in(session, user_id=user.id, refresh_ttl=3600, ip="198.51.100.1", trace_id=None)
    session.execute(text("UPDATE users SET balance = 0"))  # no money needed to be seen asking
    flagged = _signals(session, "listed_ip", user.id)
    assert [(s.detail["ip"], s.detail["network"], s.detail["seenAt"]) for s in flagged] == [
        ("203.0.113.9", "203.0.113.0/24", "signup"), ("203.0.113.10", "203.0.113.0/24", "login")]
    assert _score(session, user.id) == Decimal(100)

    funded = make_funded_user(session, "50")
    request_withdrawal(session, user_id=funded.id, amount=Decimal(10), method="paypal",
                       destination="me@example.com", minimum=Decimal(5),
                       auto_pay_limit=Decimal(100), ip="2001:db8::7")
    assert [s.detail["seenAt"] for s in _signals(session, "listed_ip", funded.id)] == ["withdrawal"]


def test_listed_ip_is_one_signal_however_the_socket_spelled_the_address(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_blocked_cidrs="203.0.113.0/24")
    user = make_funded_user(session, "50")
    sign_in(session, user_id=user.id, refresh_ttl=3600, ip="203.0.113.10", trace_id=None)
    request_withdrawal(session, user_id=user.id, amount=Decimal(10), method="paypal",
                       destination="mapped@example.com", minimum=Decimal(5),
                       auto_pay_limit=Decimal(100), ip="::ffff:203.0.113.10")  # dual-stack view
    assert [s.detail["ip"] for s in _signals(session, "listed_ip", user.id)] == ["203.0.113.10"]
    assert _score(session, user.id) == Decimal(50)


def test_shared_payout_destination_flags_both_once(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky()
    a, b = make_funded_user(session, "100"), make_funded_user(session, "100")

    def withdraw(user: User, destination: str) -> dict[str, Any]:
        return request_withdrawal(session, user_id=user.id, amount=Decimal(10), method="paypal",
                                  destination=destination, minimum=Decimal(5),
                                  auto_pay_limit=Decimal(100))

    withdraw(a, "Shared@Example.com")
    withdraw(a, "shared@example.com")  # the member's own destination again is no signal
    assert _signals(session, "shared_payout_destination") == []
    withdraw(b, "  shared@example.COM ")
    withdraw(b, "shared@example.com")
    flagged = _signals(session, "shared_payout_destination")
    assert sorted((s.user_id, s.detail["otherUserId"]) for s in flagged) == sorted(
        [(a.id, b.id), (b.id, a.id)])
    assert _score(session, a.id) == _score(session, b.id) == Decimal(40)


def test_others_naming_a_members_destination_cannot_send_them_to_review(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    # A member's PayPal address is no secret: accounts naming it later weigh on them once (one
    # shared destination, under RISK_REVIEW_SCORE alone), while each later account is linked to
    # every account that named it before it (a farm's accounts still add up).
    settings = risky()
    victim, *accounts = (make_funded_user(session, "100") for _ in range(4))

    def withdraw(user: User, destination: str) -> dict[str, Any]:
        return request_withdrawal(session, user_id=user.id, amount=Decimal(10), method="paypal",
                                  destination=destination, minimum=Decimal(5),
                                  auto_pay_limit=Decimal(100))

    withdraw(victim, "victim@example.com")
    for account in accounts:
        withdraw(account, " Victim@Example.com")
    assert _score(session, victim.id) == Decimal(40)
    assert [_score(session, a.id) for a in accounts] == [Decimal(80), Decimal(120), Decimal(120)]
    assert withdraw(victim, "victim@example.com")["needs_review"] is False  # still their own
    assert _score(session, victim.id) < settings.risk_review_score
    assert withdraw(accounts[-1], "victim@example.com")["needs_review"] is True


def test_fast_conversion_from_the_click_to_the_credit(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_fast_conversion_seconds=60)
    user = make_funded_user(session)
    offer_id = make_offer(session, network="testnet", external_id="o1")
    quick, _ = make_click(session, user.id, offer_id)
    slow, _ = make_click(session, user.id, offer_id, age=dt.timedelta(minutes=5))
    quick_sale = _credit(session, user.id, "fast-1", quick)
    _credit(session, user.id, "fast-1", quick)  # the network's retry: no new sale, no new signal
    _credit(session, user.id, "slow-1", slow)
    _credit(session, user.id, "none-1")
    flagged = _signals(session, "fast_conversion")
    assert [(s.user_id, s.detail["saleId"], s.detail["clickId"]) for s in flagged] == [
        (user.id, quick_sale, quick)]
    assert 0 <= flagged[0].detail["seconds"] < 60
    assert _score(session, user.id) == Decimal(10)


def test_postback_velocity_over_n_an_hour_once_per_hour(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_postback_velocity=3)
    user = make_funded_user(session)
    make_offer(session, network="testnet", external_id="o1")
    for i in range(3):
        _credit(session, user.id, f"v-{i}")
    assert _signals(session, "postback_velocity") == []
    fourth = _credit(session, user.id, "v-3")
    _credit(session, user.id, "v-4")
    flagged = _signals(session, "postback_velocity")
    assert [(s.user_id, s.detail["saleId"], s.detail["perHour"]) for s in flagged] == [
        (user.id, fourth, 3)]


def test_postback_velocity_counts_only_the_last_hour(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_postback_velocity=3)
    user = make_funded_user(session)
    make_offer(session, network="testnet", external_id="o1")
    for i in range(3):
        _credit(session, user.id, f"old-{i}")
    session.execute(text("UPDATE sales SET created_at = now() - interval '61 minutes'"))
    _credit(session, user.id, "new-1")
    assert _signals(session, "postback_velocity") == []


def test_reversal_rate_over_the_window(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_reversal_min_sales=3, risk_reversal_rate=Decimal("0.5"), risk_reversal_window_days=30)
    user = make_funded_user(session)
    make_offer(session, network="testnet", external_id="o1")
    for i in range(4):
        _credit(session, user.id, f"r-{i}")

    def reverse(txn: str) -> None:
        reverse_callback(session, network="testnet", external_id=txn, user_id=user.id,
                         offer_external_id="o1", amount=Decimal(10))

    reverse("r-0")
    assert _signals(session, "reversal_rate") == []
    reverse("r-1")  # 2 of 4 taken back
    reverse("r-2")  # same period: no second signal
    flagged = _signals(session, "reversal_rate")
    assert [(s.user_id, s.detail) for s in flagged] == [
        (user.id, {"sales": 4, "reversed": 2, "windowDays": 30})]


def test_reversal_rate_ignores_sales_before_the_window(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_reversal_min_sales=2, risk_reversal_window_days=30)
    user = make_funded_user(session)
    make_offer(session, network="testnet", external_id="o1")
    for i in range(3):
        _credit(session, user.id, f"w-{i}")
    with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=31), real_asyncio=True):
        reverse_callback(session, network="testnet", external_id="w-0", user_id=user.id,
                         offer_external_id="o1", amount=Decimal(10))
        reverse_callback(session, network="testnet", external_id="w-1", user_id=user.id,
                         offer_external_id="o1", amount=Decimal(10))
    assert _signals(session, "reversal_rate") == []


def test_referral_abuse_weighs_in_the_score(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_weights="referral_abuse=33.5")
    referrer = _register(session, "198.51.100.200")
    n = next(_n)
    referee = register_user(session, email=f"risk{n}@example.com", password_hash=_HASH,
                            name="Referee", refresh_ttl=3600, ip="198.51.100.200", trace_id=None,
                            referral_code=referrer.referral_code).user
    assert {s.user_id for s in _signals(session, "referral_abuse")} == {referrer.id, referee.id}
    assert _score(session, referee.id) == _score(session, referrer.id) == Decimal("33.50")


def test_nothing_is_recorded_when_risk_is_off(session: Session, risky) -> None:  # type: ignore[no-untyped-def]
    risky(risk_enabled=False, risk_blocked_cidrs="0.0.0.0/0", risk_shared_ip_accounts=2,
          risk_postback_velocity=1)
    user = _register(session, "192.0.2.70")
    _register(session, "192.0.2.70")
    offer_id = make_offer(session, network="testnet", external_id="o1")
    click, _ = make_click(session, user.id, offer_id)
    _credit(session, user.id, "off-1", click)
    _credit(session, user.id, "off-2")
    assert session.scalars(select(RiskSignal)).all() == []
