"""Analytics rollups: beat fills every closed day not yet filled, one transaction per day."""

from __future__ import annotations

from common.services.analytics import fill_pending_days
from common.taskqueue import celery_app
from workers.context import context


@celery_app.task(name="analytics.fill_daily")
def fill_daily() -> int:
    return fill_pending_days(context().transaction)
