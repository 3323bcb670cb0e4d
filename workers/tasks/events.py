"""Events: republish what the outbox holds unpublished; purge what is past retention."""

from __future__ import annotations

import datetime as dt
import time

from common.events import purge_published, sweep_unpublished
from common.redis import events_channel
from common.taskqueue import celery_app
from workers.context import context

# One run publishes at most this many batches; the next beat tick continues.
MAX_BATCHES = 20
PURGE_BATCH = 1000
# One purge deletes batches, each committed on its own, until a short one or this many seconds
# (the next run goes on): a day of events is gone in minutes, and a run never outlasts its hour.
PURGE_SECONDS = 300.0


@celery_app.task(name="events.sweep_outbox")
def sweep_outbox(older_than_seconds: float = 5.0) -> int:
    ctx = context()
    total = 0
    for _ in range(MAX_BATCHES):
        with ctx.sessions() as session, session.begin():
            sent = sweep_unpublished(
                session,
                client=ctx.redis,
                channel=events_channel(ctx.settings),
                older_than=dt.timedelta(seconds=older_than_seconds),
            )
        total += sent
        if sent == 0:
            break
    return total


@celery_app.task(name="events.purge_outbox")
def purge_outbox(batch: int = PURGE_BATCH) -> int:
    """Delete published rows past ``OUTBOX_RETENTION_DAYS``, oldest first, a committed batch at
    a time (``common.events.purge_published``)."""
    ctx, total, after = context(), 0, 0
    deadline = time.monotonic() + PURGE_SECONDS
    while time.monotonic() < deadline:
        with ctx.transaction() as session:
            done = purge_published(session, days=ctx.settings.outbox_retention_days, batch=batch,
                                   after=after)
        total, after = total + done.count, done.last
        if done.count < batch:
            break
    return total
