"""Sales: approvals (one, or the beat's batch of sales past their hold) and reversals."""

from __future__ import annotations

from common.services.sales import approve_due_sales
from common.services.sales import approve_sale as approve_one
from common.services.sales import reject_sale as reject_one
from common.services.sales import reverse_sale as reverse_one
from common.taskqueue import celery_app
from workers.context import context

BATCH = 500
# One beat run approves at most this many batches; the next tick continues.
MAX_BATCHES = 20


@celery_app.task(name="sales.approve_sale")
def approve_sale(sale_id: int) -> bool:
    with context().transaction() as session:
        return approve_one(session, sale_id=sale_id)


@celery_app.task(name="sales.reject_sale")
def reject_sale(sale_id: int) -> bool:
    with context().transaction() as session:
        return reject_one(session, sale_id=sale_id)


@celery_app.task(name="sales.reverse_sale")
def reverse_sale(sale_id: int) -> str:
    with context().transaction() as session:
        return reverse_one(session, sale_id=sale_id)


@celery_app.task(name="sales.approve_due")
def approve_due(batch: int = BATCH) -> int:
    """Approve every sale whose hold has passed, one committed batch at a time."""
    total = 0
    ctx = context()
    # A batch's events, their marking and its leaderboard update run while the next batch's
    # statement does; the task ends once they are all done.
    with ctx.unit.effects_behind():
        for _ in range(MAX_BATCHES):
            with ctx.transaction() as session:
                done = approve_due_sales(session, batch=batch)
            total += done
            if done < batch:
                break
    return total
