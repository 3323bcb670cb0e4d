"""Analytics rollups: beat fills every closed day not yet filled, one transaction per day, of
the dashboard's rollup and of the offers' conversions."""

from __future__ import annotations

from common.services.analytics import DAILY, fill_pending_days
from common.services.offer_analytics import OFFERS
from common.taskqueue import celery_app
from workers.context import context


@celery_app.task(name="analytics.fill_daily")
def fill_daily() -> int:
    return sum(fill_pending_days(context().transaction, rollup=rollup) for rollup in (DAILY, OFFERS))
