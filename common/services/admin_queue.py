"""Admin lists of sales, payments and the audit log, and the admin decisions on them.

An admin's rejection of a sale is applied in the admin's own transaction, so nothing (a lost
enqueue, the end of the hold) can approve the sale after the admin was answered. An approval ends
the sale's hold here and is credited by ``sales.approve_sale`` (enqueued after commit) or, if that
task is lost, by the beat's next batch. An approved payment's payout is enqueued by
``approve_payment`` itself.
Payments call the money services (``approve_payment`` / ``reject_payment``) directly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from common.effects import enqueue_after_commit
from common.errors import Conflict, NotFound
from common.models import AuditLog, Offer, Payment, Sale
from common.services.audit import record_audit
from common.services.payments import approve_payment, payment_json, reject_payment
from common.services.sales import reject_sale

_s, _o, _p, _a = Sale.__table__, Offer.__table__, Payment.__table__, AuditLog.__table__


def admin_sale_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "userId": row["user_id"], "offerId": row["offer_id"],
        "offerTitle": row["offer_title"], "externalId": row["external_id"],
        "saleAmount": row["sale_amount"], "commissionAmount": row["commission_amount"],
        "status": row["status"], "createdAt": row["created_at"], "decidedAt": row["decided_at"],
        "network": row["network"], "holdUntil": row["hold_until"], "clickId": row["click_id"],
    }


def list_sales(session: Session, *, status: str | None, limit: int,
               offset: int) -> tuple[list[dict[str, Any]], int]:
    where = [_s.c.status == status] if status else []
    total = session.execute(select(func.count()).select_from(_s).where(*where)).scalar_one()
    rows = session.execute(
        select(_s, _o.c.title.label("offer_title")).join(_o, _o.c.id == _s.c.offer_id)
        .where(*where).order_by(_s.c.id.desc()).limit(limit).offset(offset)
    ).mappings()
    return [admin_sale_json(r) for r in rows], total


_END_HOLD = text(
    "UPDATE sales SET hold_until = least(hold_until, now()) WHERE id = :id AND status = 'pending' "
    "RETURNING id")


def request_sale_decision(session: Session, *, sale_id: int, decision: str,
                          audit: dict[str, Any]) -> dict[str, Any]:
    """Decide a pending sale (409 otherwise) and audit it: a rejection now, an approval as soon as
    a worker runs (its hold is over from now on)."""
    row = session.execute(select(_s.c.id, _s.c.status).where(_s.c.id == sale_id)).first()
    if row is None:
        raise NotFound("Sale not found")
    done = (reject_sale(session, sale_id=sale_id) if decision == "reject"
            else session.execute(_END_HOLD, {"id": sale_id}).first() is not None)
    if done and decision == "approve":
        enqueue_after_commit(session, "sales.approve_sale", sale_id)
    if not done:
        current = session.execute(select(_s.c.status).where(_s.c.id == sale_id)).scalar_one()
        raise Conflict(f"Sale is {current}, not pending")
    status = "rejected" if decision == "reject" else "pending"
    record_audit(session, action=f"sale.{decision}", target_type="sale", target_id=sale_id,
                 before={"status": "pending"}, after={"status": status, "requested": decision},
                 **audit)
    return {"saleId": sale_id, "status": status, "queued": decision}


def admin_payment_json(row: Any) -> dict[str, Any]:
    return {**payment_json(row), "userId": row["user_id"], "needsApproval": row["needs_approval"],
            "approvedAt": row["approved_at"]}


def list_payments(session: Session, *, status: str | None, limit: int,
                  offset: int) -> tuple[list[dict[str, Any]], int]:
    where = [_p.c.status == status] if status else []
    total = session.execute(select(func.count()).select_from(_p).where(*where)).scalar_one()
    rows = session.execute(
        select(_p).where(*where).order_by(_p.c.id.desc()).limit(limit).offset(offset)).mappings()
    return [admin_payment_json(r) for r in rows], total


def _payment(session: Session, payment_id: int) -> Any:
    row = session.execute(select(_p).where(_p.c.id == payment_id)).mappings().first()
    if row is None:
        raise NotFound("Payment not found")
    return row


def decide_payment(session: Session, *, payment_id: int, approve: bool, reason: str | None,
                   audit: dict[str, Any]) -> dict[str, Any]:
    """Approve (the caller enqueues ``payouts.pay``) or reject (failed, the hold goes back) a
    pending payment; 409 when it is not awaiting that decision."""
    before = _payment(session, payment_id)
    done = (approve_payment(session, payment_id=payment_id) if approve
            else reject_payment(session, payment_id=payment_id, reason=reason or "Rejected"))
    if not done:
        raise Conflict(f"Payment is {before['status']}, not awaiting approval")
    after = _payment(session, payment_id)
    record_audit(session, action="payment.approve" if approve else "payment.reject",
                 target_type="payment", target_id=payment_id,
                 before={"status": before["status"]},
                 after={"status": after["status"], "approved": approve, "reason": reason},
                 **audit)
    return admin_payment_json(after)


def audit_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "actorId": row["actor_id"], "action": row["action"],
        "targetType": row["target_type"], "targetId": row["target_id"], "before": row["before"],
        "after": row["after"], "ip": row["ip"], "traceId": row["trace_id"],
        "createdAt": row["created_at"],
    }


def list_audit(session: Session, *, actor_id: int | None, action: str | None,
               target_type: str | None, target_id: str | None, since: dt.datetime | None,
               until: dt.datetime | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Newest first, filtered by any of actor, action, target, time range."""
    where = []
    if actor_id is not None:
        where.append(_a.c.actor_id == actor_id)
    if action:
        where.append(_a.c.action == action)
    if target_type:
        where.append(_a.c.target_type == target_type)
    if target_id:
        where.append(_a.c.target_id == target_id)
    if since:
        where.append(_a.c.created_at >= since)
    if until:
        where.append(_a.c.created_at < until)
    total = session.execute(select(func.count()).select_from(_a).where(*where)).scalar_one()
    rows = session.execute(
        select(_a).where(*where).order_by(_a.c.id.desc()).limit(limit).offset(offset)).mappings()
    return [audit_json(r) for r in rows], total
