"""Clicks: the beat's retention purge (``CLICK_RETENTION_DAYS``)."""

from __future__ import annotations

from common.services.clicks import purge_expired_clicks
from common.taskqueue import celery_app
from workers.context import context

BATCH = 1000
# One beat run deletes at most this many batches, each committed on its own; the next run goes on.
MAX_BATCHES = 50


@celery_app.task(name="sales.purge_clicks")
def purge_clicks(batch: int = BATCH) -> int:
    """Delete clicks past retention that no sale or claim names, one committed batch at a time."""
    ctx, total = context(), 0
    for _ in range(MAX_BATCHES):
        with ctx.transaction() as session:
            done = purge_expired_clicks(session, days=ctx.settings.click_retention_days, batch=batch)
        total += done
        if done < batch:
            break
    return total
