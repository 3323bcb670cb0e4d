"""Risk (docs/risk.md): the scores rebuilt from their signals (decay, changed weights), and admins
told about members whose score a hot path raised past RISK_REVIEW_SCORE."""

from __future__ import annotations

from common.services.risk import flag_crossed, rebuild_scores
from common.taskqueue import celery_app
from workers.context import context

# Members per transaction: their rows are locked while their scores are rebuilt.
BATCH = 500


@celery_app.task(name="risk.rebuild")
def rebuild() -> int:
    """Every member with a score or a signal, a batch per transaction; how many changed."""
    ctx = context()
    changed, after = 0, 0
    while True:
        with ctx.transaction() as session:
            done, last = rebuild_scores(session, after=after, limit=BATCH)
        if last is None:
            break
        changed, after = changed + done, last
    with ctx.transaction() as session:
        flag_crossed(session)
    return changed


@celery_app.task(name="risk.flag")
def flag() -> int:
    with context().transaction() as session:
        return flag_crossed(session)
