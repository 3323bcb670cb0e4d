"""Admin: sales (list by status; approve is queued to the workers, reject applies at once; 202)."""

from __future__ import annotations

from aiohttp import web

from common.services.admin_queue import list_sales, request_sale_decision
from web.auth import require_admin
from web.envelope import ok
from web.handlers.admin.base import audit_context, paged
from web.handlers.admin.schemas import AdminSaleOut, SaleDecisionOut
from web.handlers.sales import SalesQuery  # the same filter as the member's own list
from web.ids import IdPath, path_id
from web.keys import DB
from web.openapi import describe
from web.validation import parse_query


@describe("Every sale, newest first (filter status)", tags=["admin"], query=SalesQuery, response=AdminSaleOut, list=True)
@require_admin
async def sales(request: web.Request) -> web.Response:
    q = parse_query(request, SalesQuery)
    return await paged(request, q, list_sales, AdminSaleOut, status=q.status)


async def _decide(request: web.Request, decision: str) -> web.Response:
    sale_id = path_id(request, "Sale")
    data = await request.app[DB].run(request_sale_decision, sale_id=sale_id, decision=decision,
                                     audit=audit_context(request))
    return ok(data, status=202)


@describe("Approve a pending sale (queued to the workers)", tags=["admin"], path=IdPath, status=202, statuses={404: "No such sale", 409: "Not pending"}, response=SaleDecisionOut)
@require_admin
async def approve(request: web.Request) -> web.Response:
    return await _decide(request, "approve")


@describe("Reject a pending sale (applied at once; nothing can approve it afterwards)", tags=["admin"], path=IdPath, status=202, statuses={404: "No such sale", 409: "Not pending, or made by an approved claim (claim_sale)"}, response=SaleDecisionOut)
@require_admin
async def reject(request: web.Request) -> web.Response:
    return await _decide(request, "reject")


ROUTES = [
    ("GET", "/admin/sales", sales),
    ("POST", "/admin/sales/{id:\\d+}/approve", approve),
    ("POST", "/admin/sales/{id:\\d+}/reject", reject),
]
