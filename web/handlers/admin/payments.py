"""Admin: payments (list by status; approve queues the payout, 202; reject gives the hold back)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from common.services.admin_queue import decide_payment, list_payments
from web.auth import require_admin
from web.envelope import ok
from web.handlers.admin.base import audit_context, paged
from web.handlers.admin.schemas import AdminPaymentOut
from web.ids import IdPath, path_id
from web.keys import DB
from web.openapi import describe
from web.schemas import Model, PageQuery, examples
from web.validation import parse_query, read_json, validate


class PaymentsQuery(PageQuery):
    status: Literal["pending", "processing", "paid", "failed", "cancelled"] | None = None


class PaymentRejectBody(Model):
    model_config = examples({"reason": "destination is not a PayPal account"})
    reason: str = Field("Rejected by an administrator", min_length=1, max_length=500)


@describe("Every payment, newest first (filter status)", tags=["admin"], query=PaymentsQuery, response=AdminPaymentOut, list=True)
@require_admin
async def payments(request: web.Request) -> web.Response:
    q = parse_query(request, PaymentsQuery)
    return await paged(request, q, list_payments, AdminPaymentOut, status=q.status)


@describe("Approve a payment over the auto-pay limit (payout queued)", tags=["admin"], path=IdPath, status=202, statuses={404: "No such payment", 409: "Not awaiting approval; or the member is suspended, banned or frozen (code member_on_hold)"}, response=AdminPaymentOut)
@require_admin
async def approve(request: web.Request) -> web.Response:
    payment_id = path_id(request, "Payment")
    row = await request.app[DB].run(decide_payment, payment_id=payment_id, approve=True,
                                    reason=None, audit=audit_context(request))
    return ok(AdminPaymentOut.of(row), status=202)


@describe("Reject a pending payment (failed, the hold goes back)", tags=["admin"], path=IdPath, body=PaymentRejectBody, status=202, statuses={404: "No such payment", 409: "Not pending"}, response=AdminPaymentOut)
@require_admin
async def reject(request: web.Request) -> web.Response:
    payment_id = path_id(request, "Payment")  # before the body: an id naming no row is a 404
    raw = await read_json(request) if request.can_read_body else {}
    body = validate(PaymentRejectBody, raw or {})
    row = await request.app[DB].run(decide_payment, payment_id=payment_id,
                                    approve=False, reason=body.reason, audit=audit_context(request))
    return ok(AdminPaymentOut.of(row), status=202)


ROUTES = [
    ("GET", "/admin/payments", payments),
    ("POST", "/admin/payments/{id:\\d+}/approve", approve),
    ("POST", "/admin/payments/{id:\\d+}/reject", reject),
]
