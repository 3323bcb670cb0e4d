"""Payouts: ``payouts.pay`` moves a payment through the provider; ``payouts.recover`` (beat)
re-enqueues payments whose worker died mid-payout.

The provider is called with the payment's idempotency key, so a second attempt after a crash
(redelivery with acks_late, or the recovery sweep) learns the first result and never pays twice.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from celery import Task

from common.payouts import (
    BREAKER_NAME, BreakerOpen, CircuitBreaker, PayoutResult, ProviderError, make_provider,
    payout_key,
)
from common.redis import key as redis_key
from common.services.idempotency import purge_expired
from common.services.payments import PayoutJob, finish_payout, start_payout, stuck_payments
from common.taskqueue import celery_app, enqueue
from workers.context import context

log = logging.getLogger(__name__)
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def _pause_point(name: str, payment_id: int) -> None:
    """Test only: stop here (announced in Redis) so that a test can SIGKILL this worker."""
    ctx = context()
    if ctx.settings.app_env != "test" or ctx.settings.payout_test_pause_at != name:
        return
    ctx.redis.set(redis_key(ctx.settings, "test", "paused", payment_id), name)
    time.sleep(120)


@celery_app.task(name="payouts.pay", bind=True, max_retries=None)
def pay(self: Task, payment_id: int) -> str:
    ctx = context()
    with ctx.transaction() as session:
        job = start_payout(session, payment_id=payment_id)
    if job is None:
        return "nothing_to_do"
    _pause_point("before_provider", payment_id)
    try:
        result = _call_provider(job)
    except (ProviderError, BreakerOpen) as exc:
        return _retry_or_give_up(self, job, exc)
    _pause_point("after_provider", payment_id)
    with ctx.transaction() as session:
        finish_payout(session, payment_id=payment_id, paid=result.status == "paid",
                      reference=result.reference, reason=result.reason)
        _pause_point("before_commit", payment_id)
    return result.status


def _call_provider(job: PayoutJob) -> PayoutResult:
    ctx = context()
    provider = make_provider(ctx.settings, ctx.engine, ctx.redis)
    breaker = CircuitBreaker(BREAKER_NAME, ctx.settings, ctx.redis)
    return breaker.call(
        lambda: provider.pay(key=payout_key(job.payment_id), amount=job.amount,
                             destination=job.destination, method=job.method),
        failures=(ProviderError,),
    )


def _retry_or_give_up(task: Task, job: PayoutJob, exc: Exception) -> Any:
    attempts = task.request.retries + 1
    ctx = context()
    if attempts < ctx.settings.payout_max_attempts:
        log.warning("payout retried", extra={"paymentId": job.payment_id, "error": str(exc)})
        raise task.retry(countdown=backoff(attempts), exc=exc)
    # Out of attempts: fail only when the provider says it never paid; if it cannot even say,
    # the payment stays processing and the recovery sweep asks again later.
    provider = make_provider(ctx.settings, ctx.engine, ctx.redis)
    try:
        recorded = provider.lookup(key=payout_key(job.payment_id))
    except ProviderError:
        return "unknown"
    with ctx.transaction() as session:
        if recorded is None:
            finish_payout(session, payment_id=job.payment_id, paid=False,
                          reason="payout provider unavailable")
            return "failed"
        finish_payout(session, payment_id=job.payment_id, paid=recorded.status == "paid",
                      reference=recorded.reference, reason=recorded.reason)
        return recorded.status


@celery_app.task(name="payouts.recover")
def recover(older_than: float | None = None) -> int:
    """Re-enqueue payments stuck in processing (a worker died) or pending (a lost enqueue)."""
    ctx = context()
    with ctx.sessions() as session, session.begin():
        ids = stuck_payments(
            session, older_than=ctx.settings.payout_stuck_seconds if older_than is None else older_than)
    for payment_id in ids:
        enqueue("payouts.pay", payment_id)
    return len(ids)


@celery_app.task(name="payouts.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Drop Idempotency-Keys past their 24 hours (an expired key is also reusable before this)."""
    with context().transaction() as session:
        return purge_expired(session)
