"""Payouts: ``payouts.pay`` moves a payment through the provider; ``payouts.recover`` (beat)
re-enqueues payments whose lease expired (the chain died or stalled) or whose enqueue was lost.

At most one chain acts on a payment at a time: a chain holds the payment's lease, and every write
it makes is fenced by the lease's token (``common/services/payments.py``). The provider is called
with the payment's idempotency key, so a chain that takes over after a crash learns the first
result and never pays twice; funds go back only after the provider voided the key.

The steps (``take``, ``confirm``, ``attempt``, ``record``, ``give_up``) are functions of their own
so that a test can drive two chains' steps in any order. ``confirm`` runs right before the
provider: a chain that stalled after its take and lost the lease stops there, and a member put on
hold (suspended, banned, frozen) since the payment was accepted has the payout withdrawn: the key
voided at the provider, the payment failed and the amount back in the balance.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task

from common.outages import DEPENDENCY_DOWN
from common.payouts import (
    BREAKER_NAME,
    BreakerOpen,
    CircuitBreaker,
    PayoutResult,
    ProviderError,
    make_provider,
    payout_key,
)
from common.services.idempotency import purge_expired
from common.services.payments import (
    PayoutJob,
    confirm_payout,
    finish_payout,
    renew_lease,
    start_payout,
    stuck_payments,
)
from common.taskqueue import celery_app, enqueue
from common.uow import SyncContext
from workers.checkpoints import checkpoint
from workers.context import context

log = logging.getLogger(__name__)
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0
# Why a payout that was under way is withdrawn: its member was suspended, banned or frozen in
# the meantime (the member reads it in the payment's ``failureReason`` and notification).
ON_HOLD_REASON = "withdrawn: the account is on hold"


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


@celery_app.task(name="payouts.pay", bind=True, max_retries=None)
def pay(self: Task, payment_id: int, token: int | None = None, failures: int = 0) -> str:
    """``failures``: the provider's transient failures (and the open breaker's fast-fails) so far
    in this chain. Only they count against ``PAYOUT_MAX_ATTEMPTS``: a retry because PostgreSQL
    or Redis was away is not an attempt at the provider, and a payout must not be given up
    because of an outage."""
    ctx = context()
    job = take(ctx, payment_id, token)
    if job is None:
        return "nothing_to_do"
    checkpoint("before_provider", payment_id)
    spent = failures  # counted as soon as the provider failed, whatever fails after it
    try:
        on_hold = confirm(ctx, job)
        if on_hold is None:
            return "lease_lost"
        if on_hold:
            return give_up(ctx, job, reason=ON_HOLD_REASON)
        if failures >= ctx.settings.payout_max_attempts:
            return give_up(ctx, job)  # its giving up met an outage: no attempt is left
        outcome = attempt(ctx, job)
        if isinstance(outcome, Exception):
            spent = failures + 1
            return _provider_failed(self, ctx, job, outcome, spent)
        checkpoint("after_provider", payment_id)
        return record(ctx, job, outcome)
    except DEPENDENCY_DOWN as exc:
        # Redis (the breaker) or PostgreSQL went away with the lease held: this chain carries on
        # later with its token. (Retried without it, as the task's automatic retry would, it
        # would find its own lease taken and leave the payment until the lease expired.)
        raise self.retry(countdown=backoff(1), exc=exc,
                         **retry_arguments(payment_id, job, spent)) from exc


def _provider_failed(task: Task, ctx: SyncContext, job: PayoutJob, outcome: Exception,
                     attempts: int) -> str:
    """Retry after the provider's ``attempts``-th transient failure (backoff), or give up after
    the last attempt."""
    if attempts >= ctx.settings.payout_max_attempts:
        return give_up(ctx, job)
    wait = backoff(attempts)
    # The lease covers the wait, so the sweep leaves this chain alone meanwhile.
    if not _renew(ctx, job, wait + ctx.settings.payout_stuck_seconds):
        return "lease_lost"
    log.warning("payout retried", extra={"paymentId": job.payment_id, "error": str(outcome)})
    raise task.retry(countdown=wait, exc=outcome,
                     **retry_arguments(job.payment_id, job, attempts))


def retry_arguments(payment_id: int, job: PayoutJob, failures: int) -> dict[str, Any]:
    """The retry's arguments: both given, because Celery reuses the first delivery's positional
    arguments when only keywords are given (``payment_id`` would then arrive twice)."""
    return {"args": (payment_id,), "kwargs": {"token": job.token, "failures": failures}}


def take(ctx: SyncContext, payment_id: int, token: int | None = None) -> PayoutJob | None:
    """Take the payment's lease (see ``start_payout``)."""
    with ctx.transaction() as session:
        return start_payout(session, payment_id=payment_id, token=token,
                            lease_seconds=ctx.settings.payout_stuck_seconds)


def confirm(ctx: SyncContext, job: PayoutJob) -> bool | None:
    """Right before the provider: whether the member is on hold now, or None when the lease
    passed to another chain meanwhile (see ``confirm_payout``)."""
    with ctx.transaction() as session:
        return confirm_payout(session, job=job, lease_seconds=ctx.settings.payout_stuck_seconds)


def attempt(ctx: SyncContext, job: PayoutJob) -> PayoutResult | Exception:
    """One call to the provider through the breaker: its result, or the transient error."""
    provider = make_provider(ctx.settings, ctx.engine, ctx.redis)
    breaker = CircuitBreaker(BREAKER_NAME, ctx.settings, ctx.redis)
    try:
        return breaker.call(
            lambda: provider.pay(key=payout_key(job.payment_id), amount=job.amount,
                                 destination=job.destination, method=job.method),
            failures=(ProviderError,),
        )
    except (ProviderError, BreakerOpen) as exc:
        return exc


def record(ctx: SyncContext, job: PayoutJob, result: PayoutResult) -> str:
    """Write the provider's answer, if this chain still holds the lease."""
    with ctx.transaction() as session:
        done = finish_payout(session, job=job, paid=result.status == "paid",
                             reference=result.reference, reason=result.reason)
        checkpoint("before_commit", job.payment_id)
    if not done:
        log.warning("payout result not recorded: lease lost", extra={"paymentId": job.payment_id})
        return "lease_lost"
    return result.status


def give_up(ctx: SyncContext, job: PayoutJob, reason: str = "payout provider unavailable") -> str:
    """Out of attempts, or the member went on hold: void the key at the provider, then fail with
    ``reason`` and release, unless the provider had paid (or declined) already, in which case that
    is recorded. A chain that lost its lease voids nothing (the chain holding it decides); if the
    provider cannot be reached, the payment stays in processing and the sweep takes it up again
    when the lease expires."""
    if not _renew(ctx, job, ctx.settings.payout_stuck_seconds):
        return "lease_lost"
    provider = make_provider(ctx.settings, ctx.engine, ctx.redis)
    try:
        recorded = provider.void(key=payout_key(job.payment_id))
    except ProviderError:
        return "unknown"
    if recorded is None or recorded.status == "voided":
        # Voided by this chain, or by an earlier step of it whose record was lost (an outage,
        # then the retry): the reason is this chain's, not the provider's "cancelled".
        recorded = PayoutResult("voided", "", reason)
    return record(ctx, job, recorded)


def _renew(ctx: SyncContext, job: PayoutJob, seconds: float) -> bool:
    with ctx.transaction() as session:
        return renew_lease(session, job=job, lease_seconds=seconds)


@celery_app.task(name="payouts.recover")
def recover(older_than: float | None = None) -> int:
    """Re-enqueue payments whose lease expired (a worker died) or still pending (a lost enqueue)."""
    ctx = context()
    with ctx.transaction() as session:
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
