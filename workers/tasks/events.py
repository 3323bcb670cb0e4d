"""Events: republish what the outbox holds unpublished."""

from __future__ import annotations

import datetime as dt

from common.events import sweep_unpublished
from common.redis import events_channel
from common.taskqueue import celery_app
from workers.context import context

# One run publishes at most this many batches; the next beat tick continues.
MAX_BATCHES = 20


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
