"""At most one payout chain acts on a payment: the lease, its fencing token, and the provider's
void, driven step by step in the orders that paid twice before (docs/money.md "Payouts")."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.services.ledger import check_ledger
from common.services.payments import (
    PayoutJob,
    approve_payment,
    finish_payout,
    start_payout,
    stuck_payments,
)
from common.uow import SyncContext
from tests.fixtures.money_factories import committed_withdrawal
from workers.tasks.payouts import attempt, give_up, record, take

pytestmark = pytest.mark.committed


@pytest.fixture
def ctx(committed: Engine, settings: Settings, redis_sync: redis.Redis) -> Iterator[SyncContext]:
    yield SyncContext.create(
        settings.model_copy(update={"payout_sandbox_latency_ms": 0}), engine=committed,
        client=redis_sync)


def _expire_lease(engine: Engine, payment_id: int) -> None:
    """Time passes beyond the lease (the holder stalled: a long retry wait, a slow provider)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE payments SET lease_until = now() - interval '1 second' "
                          "WHERE id = :id"), {"id": payment_id})


def _state(engine: Engine, user_id: int, payment_id: int) -> tuple[str, Decimal, list[str]]:
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM payments WHERE id = :id"),
                              {"id": payment_id}).scalar_one()
        balance = conn.execute(text("SELECT balance FROM users WHERE id = :id"),
                               {"id": user_id}).scalar_one()
        provider = list(conn.execute(text(
            "SELECT status FROM sandbox_payouts WHERE idempotency_key = :k"),
            {"k": f"payment:{payment_id}"}).scalars())
    with Session(engine) as session:
        assert check_ledger(session) == []
    return status, balance, provider


def test_an_old_chain_out_of_attempts_cannot_fail_a_payment_another_chain_holds(ctx: SyncContext, committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, "20")
    x = take(ctx, payment_id)             # chain X starts, then waits for a retry
    assert x is not None
    _expire_lease(committed, payment_id)  # X's wait outlives its lease: the sweep dispatches Y
    y = take(ctx, payment_id)
    assert y is not None and y.token > x.token
    assert give_up(ctx, x) == "lease_lost"  # X runs out of attempts: it voids and releases nothing
    result = attempt(ctx, y)
    assert not isinstance(result, Exception)
    assert record(ctx, y, result) == "paid"
    assert _state(committed, user_id, payment_id) == ("paid", Decimal("180.00"), ["paid"])


def test_a_stalled_chain_inside_the_provider_cannot_pay_after_the_holder_gave_up(ctx: SyncContext, committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, "20")
    y = take(ctx, payment_id)             # chain Y is about to call the provider, and stalls
    assert y is not None
    _expire_lease(committed, payment_id)
    x = take(ctx, payment_id)             # X takes over, fails every attempt, gives up
    assert x is not None
    assert give_up(ctx, x) == "voided"    # the key is void at the provider, then released
    result = attempt(ctx, y)              # Y wakes up inside the provider with the same key
    assert not isinstance(result, Exception) and result.status == "voided"
    assert record(ctx, y, result) == "lease_lost"
    assert _state(committed, user_id, payment_id) == ("failed", Decimal("200.00"), ["voided"])


def test_a_holder_giving_up_after_a_stalled_chain_paid_records_the_payment(ctx: SyncContext, committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, "20")
    y = take(ctx, payment_id)
    assert y is not None
    paid = attempt(ctx, y)                # the provider pays, Y stalls before recording it
    _expire_lease(committed, payment_id)
    x = take(ctx, payment_id)
    assert x is not None
    assert give_up(ctx, x) == "paid"      # the void finds the payment made: paid, nothing released
    assert not isinstance(paid, Exception)
    assert record(ctx, y, paid) == "lease_lost"
    assert _state(committed, user_id, payment_id) == ("paid", Decimal("180.00"), ["paid"])


def test_a_stalled_chain_records_nothing_while_another_holds_the_lease(ctx: SyncContext, committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, "20")
    y = take(ctx, payment_id)
    assert y is not None
    paid = attempt(ctx, y)
    _expire_lease(committed, payment_id)
    x = take(ctx, payment_id)             # X holds the lease; the payment is still processing
    assert x is not None and not isinstance(paid, Exception)
    assert record(ctx, y, paid) == "lease_lost"
    assert _state(committed, user_id, payment_id) == ("processing", Decimal("180.00"), ["paid"])
    result = attempt(ctx, x)              # X learns the first result from the provider
    assert not isinstance(result, Exception)
    assert record(ctx, x, result) == "paid"
    assert _state(committed, user_id, payment_id) == ("paid", Decimal("180.00"), ["paid"])


def test_a_second_chain_gets_nothing_while_the_lease_is_live(ctx: SyncContext, committed: Engine) -> None:
    _, payment_id = committed_withdrawal(committed, "20")
    first = take(ctx, payment_id)
    assert first is not None
    assert take(ctx, payment_id) is None              # a duplicate enqueue, a redelivery
    again = take(ctx, payment_id, first.token)        # the same chain's retry keeps it
    assert again is not None and again.token == first.token + 1
    assert take(ctx, payment_id, first.token) is None  # and the token it left behind is stale


def test_the_sweep_enqueues_expired_leases_only_and_once_per_period(ctx: SyncContext, committed: Engine) -> None:
    _, payment_id = committed_withdrawal(committed, "20")
    assert take(ctx, payment_id) is not None
    with ctx.transaction() as session:
        assert stuck_payments(session, older_than=60) == []
    _expire_lease(committed, payment_id)
    with ctx.transaction() as session:
        assert stuck_payments(session, older_than=60) == [payment_id]
    with ctx.transaction() as session:
        assert stuck_payments(session, older_than=60) == []  # already enqueued this period


def test_a_finished_payment_cannot_be_finished_again(ctx: SyncContext, committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, "20")
    job = take(ctx, payment_id)
    assert job is not None
    with ctx.transaction() as session:
        assert finish_payout(session, job=job, paid=True, reference="r1")
    with ctx.transaction() as session:
        assert not finish_payout(session, job=job, paid=False, reason="late failure")
    assert _state(committed, user_id, payment_id)[:2] == ("paid", Decimal("180.00"))


def test_a_payment_over_the_auto_pay_limit_is_not_paid_before_an_admin_approves(ctx: SyncContext, committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, "150")
    with ctx.transaction() as session:
        assert start_payout(session, payment_id=payment_id, lease_seconds=60) is None
    with ctx.transaction() as session:
        assert approve_payment(session, payment_id=payment_id)
    with ctx.transaction() as session:
        assert start_payout(session, payment_id=payment_id, lease_seconds=60) is not None
    assert _state(committed, user_id, payment_id) == ("processing", Decimal("50.00"), [])


def test_a_chain_records_the_providers_reference_and_reason(ctx: SyncContext, committed: Engine) -> None:
    _, paid_id = committed_withdrawal(committed, "20")
    _, declined_id = committed_withdrawal(committed, "20", destination="decline@example.com")
    for payment_id in (paid_id, declined_id):
        job = take(ctx, payment_id)
        assert job is not None
        result = attempt(ctx, job)
        assert not isinstance(result, Exception)
        assert record(ctx, job, result) == result.status
    with committed.connect() as conn:
        rows = {r.id: r for r in conn.execute(text(
            "SELECT p.id, p.status, p.provider_reference, p.failure_reason, s.reference "
            "FROM payments p JOIN sandbox_payouts s ON s.idempotency_key = 'payment:' || p.id"))}
    paid, declined = rows[paid_id], rows[declined_id]
    assert (paid.status, paid.provider_reference, paid.failure_reason) == ("paid", paid.reference, None)
    assert (declined.status, declined.provider_reference, declined.failure_reason) == (
        "failed", declined.reference, "declined by the payout provider")


def test_a_transient_provider_error_counts_against_the_payout_breaker(ctx: SyncContext, committed: Engine) -> None:
    from common.payouts import BREAKER_NAME, ProviderError
    from common.redis import key

    _, payment_id = committed_withdrawal(committed, "20", destination="flaky@example.com")
    job = take(ctx, payment_id)
    assert job is not None
    assert isinstance(attempt(ctx, job), ProviderError)      # flaky: fails once
    assert ctx.redis.get(key(ctx.settings, "breaker", BREAKER_NAME, "failures")) == b"1"
    result = attempt(ctx, job)
    assert not isinstance(result, Exception) and result.status == "paid"


def test_an_unreachable_provider_on_give_up_leaves_the_payment_leased_for_the_sweep(
    ctx: SyncContext, committed: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from common.payouts import ProviderError
    from workers.tasks import payouts

    class Unreachable:
        def void(self, *, key: str) -> None:
            raise ProviderError("unreachable")

    user_id, payment_id = committed_withdrawal(committed, "20")
    job = take(ctx, payment_id)
    assert job is not None
    monkeypatch.setattr(payouts, "make_provider", lambda *_: Unreachable())
    assert give_up(ctx, job) == "unknown"
    with committed.connect() as conn:
        leased = conn.execute(text("SELECT lease_until > now() FROM payments WHERE id = :id"),
                              {"id": payment_id}).scalar_one()
    assert leased is True   # renewed, not cleared: the sweep takes it up after the lease
    assert _state(committed, user_id, payment_id) == ("processing", Decimal("180.00"), [])


def test_a_chain_out_of_attempts_voids_and_fails_with_the_reason(ctx: SyncContext, committed: Engine) -> None:
    user_id, payment_id = committed_withdrawal(committed, "20")
    job = take(ctx, payment_id)
    assert job is not None
    assert give_up(ctx, job) == "voided"
    with committed.connect() as conn:
        row = conn.execute(text("SELECT provider_reference, failure_reason FROM payments "
                                "WHERE id = :id"), {"id": payment_id}).one()
    assert tuple(row) == ("", "payout provider unavailable")
    assert _state(committed, user_id, payment_id) == ("failed", Decimal("200.00"), ["voided"])


def test_a_retry_message_carries_the_payment_once_and_the_token() -> None:
    """Celery rebuilds a retry from the first delivery (``enqueue("payouts.pay", id)``: the id
    positional); the retry's arguments must bind to the task without the id twice."""
    import inspect

    from celery.app.task import Context

    from workers.tasks.payouts import pay, retry_arguments

    first = Context(args=(7,), kwargs={}, id="t", retries=0, delivery_info={})
    job = PayoutJob(7, 1, Decimal(10), "paypal", "me@example.com", token=3)
    retried = pay.signature_from_request(first, **retry_arguments(7, job, 2))
    bound = inspect.signature(pay.run).bind(*retried.args, **retried.kwargs)
    assert bound.arguments == {"payment_id": 7, "token": 3, "failures": 2}


_OPERATOR = {"actor_id": None, "ip": None, "trace_id": None}


def _put_on_hold(engine: Engine, user_id: int, how: str) -> None:
    """An admin suspends, bans or freezes the member (the real services, committed)."""
    from common.services.accounts import set_user_status
    from common.services.risk import set_payouts_frozen

    with Session(engine) as session, session.begin():
        if how == "frozen":
            set_payouts_frozen(session, user_id=user_id, frozen=True, reason="checks", audit=_OPERATOR)
        else:
            set_user_status(session, user_id=user_id, status=how, reason="checks", **_OPERATOR)


def _failure_reason(engine: Engine, payment_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT failure_reason FROM payments WHERE id = :id"),
                            {"id": payment_id}).scalar_one()


ON_HOLD = ["suspended", "banned", "frozen"]


@pytest.mark.parametrize("how", ON_HOLD)
def test_a_chain_retrying_after_the_member_went_on_hold_withdraws_the_payout(ctx: SyncContext, committed: Engine, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The chain took the payment and the provider failed (or its breaker was open): it waits to
    retry with its token. Meanwhile an admin puts the member on hold. The retry voids the key
    and fails the payment: the amount goes back to the balance, nothing reaches the member."""
    from workers.tasks import payouts

    user_id, payment_id = committed_withdrawal(committed, "20")
    x = take(ctx, payment_id)
    assert x is not None
    _put_on_hold(committed, user_id, how)
    monkeypatch.setattr(payouts, "context", lambda: ctx)
    assert payouts.pay(payment_id, token=x.token) == "voided"  # the retry, as Celery runs it
    assert _state(committed, user_id, payment_id) == ("failed", Decimal("200.00"), ["voided"])
    assert _failure_reason(committed, payment_id) == payouts.ON_HOLD_REASON


@pytest.mark.parametrize("how", ON_HOLD)
def test_a_chain_taking_over_after_the_member_went_on_hold_withdraws_the_payout(ctx: SyncContext, committed: Engine, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The chain that took the payment died before the provider; the member is put on hold; the
    sweep's chain takes the expired lease over and withdraws the payout instead of paying it."""
    from workers.tasks import payouts

    user_id, payment_id = committed_withdrawal(committed, "20")
    assert take(ctx, payment_id) is not None  # then the worker dies
    _put_on_hold(committed, user_id, how)
    _expire_lease(committed, payment_id)
    monkeypatch.setattr(payouts, "context", lambda: ctx)
    assert payouts.pay(payment_id) == "voided"
    assert _state(committed, user_id, payment_id) == ("failed", Decimal("200.00"), ["voided"])


def test_a_payout_the_provider_made_before_the_hold_is_recorded_paid(ctx: SyncContext, committed: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Too late to withdraw: the provider paid before the member was put on hold, and the chain
    died before recording it. The taking-over chain's void learns of the payment and records it."""
    from workers.tasks import payouts

    user_id, payment_id = committed_withdrawal(committed, "20")
    y = take(ctx, payment_id)
    assert y is not None
    assert not isinstance(attempt(ctx, y), Exception)  # paid at the provider; the chain dies
    _put_on_hold(committed, user_id, "suspended")
    _expire_lease(committed, payment_id)
    monkeypatch.setattr(payouts, "context", lambda: ctx)

    def no_second_payout(*_: object) -> None:
        raise AssertionError("the provider is called to pay a member on hold")

    monkeypatch.setattr(payouts, "attempt", no_second_payout)  # only the void may learn of it
    assert payouts.pay(payment_id) == "paid"
    assert _state(committed, user_id, payment_id) == ("paid", Decimal("180.00"), ["paid"])


@pytest.mark.parametrize("how", ["suspended", "frozen"])
def test_an_approval_given_while_the_member_was_on_hold_is_not_paid(ctx: SyncContext, committed: Engine, how: str) -> None:
    """An approval that predates the rule that a hold withdraws approvals (the member was put on
    hold by a direct change of the row here): the payout chain's first take sends it back to an
    admin instead of paying it."""
    user_id, payment_id = committed_withdrawal(committed, "150")  # over the auto-pay limit
    with Session(committed) as session, session.begin():
        assert approve_payment(session, payment_id=payment_id)
    column = "payouts_frozen = true" if how == "frozen" else "status = 'suspended'"
    with committed.begin() as conn:
        conn.execute(text(f"UPDATE users SET {column} WHERE id = :id"), {"id": user_id})
    assert take(ctx, payment_id) is None
    with committed.connect() as conn:
        row = conn.execute(text("SELECT status, needs_review, needs_approval, approved_at "
                                "FROM payments WHERE id = :id"), {"id": payment_id}).one()
    assert tuple(row) == ("pending", True, True, None)
    assert _state(committed, user_id, payment_id)[1:] == (Decimal("50.00"), [])


def test_a_chain_that_stalled_after_its_take_never_reaches_the_provider(ctx: SyncContext, committed: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chain A takes the payment and stalls before the provider, past its lease. The member is
    suspended; the sweep's chain B takes the lease over and is about to void. A wakes up: it
    must not pay (it would have paid the suspended member before B's void); it stops, and B
    withdraws the payout."""
    from workers.tasks import payouts

    user_id, payment_id = committed_withdrawal(committed, "20")
    taken_over: list[object] = []

    def stall(point: str, _: int) -> None:
        if point == "before_provider" and not taken_over:  # A, between its take and the provider
            _expire_lease(committed, payment_id)
            _put_on_hold(committed, user_id, "suspended")
            taken_over.append(take(ctx, payment_id))  # B, which stalls in turn

    monkeypatch.setattr(payouts, "context", lambda: ctx)
    monkeypatch.setattr(payouts, "checkpoint", stall)
    assert payouts.pay(payment_id) == "lease_lost"  # A
    b = taken_over[0]
    assert isinstance(b, PayoutJob)
    assert give_up(ctx, b, reason=payouts.ON_HOLD_REASON) == "voided"  # B goes on
    assert _state(committed, user_id, payment_id) == ("failed", Decimal("200.00"), ["voided"])


def test_outage_retries_are_not_attempts_at_the_provider(ctx: SyncContext, committed: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL goes away right before the provider, more times than PAYOUT_MAX_ATTEMPTS, then
    the provider fails twice and pays. The chain (run eagerly, every retry with the arguments
    it sends) pays: only the provider's failures count, an outage does not use them up."""
    import psycopg

    from common.payouts import ProviderError
    from workers.tasks import payouts

    user_id, payment_id = committed_withdrawal(committed, "20")
    outages = iter(range(ctx.settings.payout_max_attempts + 1))
    failures = iter(range(2))
    real_confirm, real_attempt = payouts.confirm, payouts.attempt

    def flaky_database(ctx: SyncContext, job: PayoutJob) -> bool | None:
        if next(outages, None) is not None:
            raise psycopg.OperationalError("connection refused")
        return real_confirm(ctx, job)

    def flaky_provider(ctx: SyncContext, job: PayoutJob) -> object:
        if next(failures, None) is not None:
            return ProviderError("timeout")
        return real_attempt(ctx, job)

    monkeypatch.setattr(payouts, "context", lambda: ctx)
    monkeypatch.setattr(payouts, "backoff", lambda attempt: 0.0)
    monkeypatch.setattr(payouts, "confirm", flaky_database)
    monkeypatch.setattr(payouts, "attempt", flaky_provider)
    assert payouts.pay.apply(args=(payment_id,)).get() == "paid"
    assert _state(committed, user_id, payment_id) == ("paid", Decimal("180.00"), ["paid"])


def test_a_provider_failure_followed_by_an_outage_still_counts(ctx: SyncContext, committed: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider fails every time, and each time PostgreSQL goes away right after (the lease
    renewal before the retry's wait, or before the void when giving up). The failures still add
    up: the chain gives up after exactly PAYOUT_MAX_ATTEMPTS calls to the provider, never
    retrying without end, and no call is made once none is left."""
    import psycopg

    from common.payouts import ProviderError
    from workers.tasks import payouts

    user_id, payment_id = committed_withdrawal(committed, "20")
    calls: list[int] = []
    renewals: list[int] = []
    real_renew = payouts._renew

    def failing_provider(ctx: SyncContext, job: PayoutJob) -> object:
        calls.append(job.token)
        assert len(calls) <= ctx.settings.payout_max_attempts, "retried past the limit"
        return ProviderError("timeout")

    def renew_after_an_outage(ctx: SyncContext, job: PayoutJob, seconds: float) -> bool:
        if len(calls) not in renewals:  # the first renewal after each failure meets the outage
            renewals.append(len(calls))
            raise psycopg.OperationalError("connection refused")
        return real_renew(ctx, job, seconds)

    monkeypatch.setattr(payouts, "context", lambda: ctx)
    monkeypatch.setattr(payouts, "backoff", lambda attempt: 0.0)
    monkeypatch.setattr(payouts, "attempt", failing_provider)
    monkeypatch.setattr(payouts, "_renew", renew_after_an_outage)
    assert payouts.pay.apply(args=(payment_id,)).get() == "voided"
    assert len(calls) == ctx.settings.payout_max_attempts
    assert _state(committed, user_id, payment_id) == ("failed", Decimal("200.00"), ["voided"])


@pytest.mark.parametrize("error", [redis.ConnectionError, redis.ReadOnlyError])
def test_the_breakers_bookkeeping_never_hides_the_providers_answer(ctx: SyncContext, monkeypatch: pytest.MonkeyPatch, error: type[redis.RedisError]) -> None:
    """Redis goes away (or turns read-only in a failover) between the provider's answer and the
    breaker's count: the caller still gets the answer (a failure to count, a payment to record),
    not an outage."""
    from common.breakers import REGISTERED
    from common.payouts import ProviderError
    from common.payouts.breaker import CircuitBreaker

    breaker = CircuitBreaker("test_breaker", ctx.settings, ctx.redis)
    REGISTERED.discard("test_breaker")  # not one that /health and the metrics should list

    def redis_away() -> None:
        raise error("Redis cannot count it")

    monkeypatch.setattr(breaker, "_failed", redis_away)
    monkeypatch.setattr(breaker, "_succeeded", redis_away)

    def fails() -> None:
        raise ProviderError("timeout")

    with pytest.raises(ProviderError):
        breaker.call(fails, failures=(ProviderError,))
    assert breaker.call(lambda: "paid", failures=(ProviderError,)) == "paid"
