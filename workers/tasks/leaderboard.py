"""Leaderboards: the absolute rebuild from PostgreSQL and the prizes of closed periods."""

from __future__ import annotations

import datetime as dt

from common.services.leaderboard import pay_prizes, prize_table, rebuild_current
from common.taskqueue import celery_app
from workers.context import context


@celery_app.task(name="leaderboard.rebuild")
def rebuild() -> dict[str, int]:
    ctx = context()
    with ctx.transaction() as session:
        # One snapshot for every bucket.
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return rebuild_current(session, client=ctx.redis, settings=ctx.settings,
                               now=dt.datetime.now(dt.UTC))


@celery_app.task(name="leaderboard.pay_prizes")
def prizes() -> int:
    ctx = context()
    table = prize_table(ctx.settings.leaderboard_prizes)
    if not table:
        return 0
    with ctx.transaction() as session:
        return len(pay_prizes(session, table=table, now=dt.datetime.now(dt.UTC)))
