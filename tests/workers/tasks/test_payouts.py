"""Payouts through a real worker: paid, declined, timeouts after paying, admin approval,
the circuit breaker, and a worker SIGKILLed mid-payout at several points."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.payouts import BREAKER_NAME, BreakerOpen, CircuitBreaker, ProviderError
from common.redis import key as redis_key
from common.services.payments import approve_payment
from common.taskqueue import enqueue
from tests.fixtures.money_factories import committed_withdrawal
from tests.fixtures.processes import kill, start_worker, wait_for


def _status(engine: Engine, payment_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM payments WHERE id = :id"), {"id": payment_id}).scalar_one()


def _final(engine: Engine, payment_id: int) -> Callable[[], bool]:
    return lambda: _status(engine, payment_id) in ("paid", "failed")


def _provider_rows(engine: Engine, payment_id: int) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT status FROM sandbox_payouts WHERE idempotency_key = :k"), {"k": f"payment:{payment_id}"}).scalars())


def _balance(engine: Engine, user_id: int) -> Decimal:
    with engine.connect() as conn:
        return conn.execute(text("SELECT balance FROM users WHERE id = :id"), {"id": user_id}).scalar_one()


@pytest.mark.committed
@pytest.mark.parametrize(
    ("destination", "final", "balance"),
    [("me@example.com", "paid", "190.00"), ("decline@example.com", "failed", "200.00"),
     ("timeout@example.com", "paid", "190.00"), ("flaky@example.com", "paid", "190.00")],
)
def test_payout_through_the_worker(celery_worker, committed: Engine, destination, final, balance) -> None:  # type: ignore[no-untyped-def]
    user_id, payment_id = committed_withdrawal(committed, destination=destination)
    enqueue("payouts.pay", payment_id)
    wait_for(_final(committed, payment_id))
    assert _status(committed, payment_id) == final
    assert _provider_rows(committed, payment_id) == ["paid" if final == "paid" else "declined"]
    assert _balance(committed, user_id) == Decimal(balance)
    with committed.connect() as conn:
        statuses = conn.execute(text(
            "SELECT data->>'status' FROM outbox WHERE event = 'payment:status' ORDER BY id")).scalars().all()
        kinds = conn.execute(text("SELECT type FROM notifications")).scalars().all()
    assert statuses == ["pending", "processing", final]
    assert kinds == [f"payment_{final}"]


@pytest.mark.committed
def test_over_the_auto_pay_limit_waits_for_an_admin(celery_worker, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    user_id, payment_id = committed_withdrawal(committed, amount="150")
    enqueue("payouts.pay", payment_id)  # a stray enqueue must not pay it
    with Session(committed) as session, session.begin():
        assert approve_payment(session, payment_id=payment_id)
    enqueue("payouts.pay", payment_id)
    wait_for(_final(committed, payment_id))
    assert _status(committed, payment_id) == "paid"
    assert _balance(committed, user_id) == Decimal("50.00")


def test_breaker_opens_then_lets_one_trial_through(settings: Settings, redis_sync: redis.Redis) -> None:
    breaker = CircuitBreaker(BREAKER_NAME, settings, redis_sync)

    def boom() -> None:
        raise ProviderError("down")

    for _ in range(5):
        with pytest.raises(ProviderError):
            breaker.call(boom, failures=(ProviderError,))
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: 1, failures=(ProviderError,))
    assert redis_sync.get(breaker.state) == b"open"
    redis_sync.delete(breaker.open_until)  # the cooldown has passed
    assert breaker.call(lambda: 1, failures=(ProviderError,)) == 1
    assert redis_sync.get(breaker.state) is None


async def test_health_lists_the_payout_breaker(client, redis_sync: redis.Redis, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    body = await (await client.get("/health")).json()
    assert body["checks"]["external_apis"]["breakers"][BREAKER_NAME] == "closed"
    redis_sync.set(redis_key(settings, "breaker", BREAKER_NAME, "state"), "open")
    resp = await client.get("/health")
    assert resp.status == 503


def _sweep_until_final(engine: Engine, payment_id: int, timeout: float = 60) -> None:
    """The beat's recovery sweep, every half second, until the payment is final."""
    deadline = time.monotonic() + timeout
    while not _final(engine, payment_id)():
        assert time.monotonic() < deadline, "payment not final in time"
        enqueue("payouts.recover", 0)
        time.sleep(0.5)


def _kill_worker_at(point: str, payment_id: int, settings: Settings, redis_sync: redis.Redis) -> None:
    """A worker takes the payment and is SIGKILLed at ``point`` (workers/checkpoints.py). Its
    lease is short, so that the sweep may take the payment over soon after."""
    worker = start_worker(PAYOUT_TEST_PAUSE_AT=point, PAYOUT_STUCK_SECONDS="2")
    try:
        enqueue("payouts.pay", payment_id)
        paused = redis_key(settings, "test", "paused", payment_id)
        wait_for(lambda: redis_sync.get(paused) is not None, timeout=60)
    finally:
        kill(worker)


def _recover(engine: Engine, payment_id: int) -> None:
    """A fresh worker, and the beat's recovery sweep, until the payment is final."""
    worker = start_worker(PAYOUT_STUCK_SECONDS="2")
    try:
        _sweep_until_final(engine, payment_id)
    finally:
        kill(worker)


@pytest.mark.committed
@pytest.mark.parametrize("point", ["before_provider", "after_provider", "before_commit"])
def test_worker_killed_mid_payout_recovers(committed: Engine, settings: Settings, redis_sync: redis.Redis, point: str) -> None:
    user_id, payment_id = committed_withdrawal(committed)
    _kill_worker_at(point, payment_id, settings, redis_sync)
    assert _status(committed, payment_id) == "processing"
    _recover(committed, payment_id)  # the payment finishes, paid exactly once
    assert _status(committed, payment_id) == "paid"
    assert _provider_rows(committed, payment_id) == ["paid"]
    assert _balance(committed, user_id) == Decimal("190.00")


@pytest.mark.committed
def test_a_worker_killed_mid_payout_then_the_member_suspended_is_never_paid(committed: Engine, settings: Settings, redis_sync: redis.Redis) -> None:
    """SIGKILL between the take and the provider; an admin suspends the member; the recovery
    sweep's chain takes the payment over and withdraws the payout: failed, the amount back."""
    from common.services.accounts import set_user_status

    user_id, payment_id = committed_withdrawal(committed)
    _kill_worker_at("before_provider", payment_id, settings, redis_sync)
    with Session(committed) as session, session.begin():
        set_user_status(session, actor_id=None, user_id=user_id, status="suspended",
                        reason="checks", ip=None, trace_id=None)
    _recover(committed, payment_id)
    assert _status(committed, payment_id) == "failed"
    assert _provider_rows(committed, payment_id) == ["voided"]
    assert _balance(committed, user_id) == Decimal("200.00")
