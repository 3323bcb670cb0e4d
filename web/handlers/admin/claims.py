"""Admin: missing-credit claims (list by status; approve credits the claim's sale through the
workers, 202; reject applies at once). Both decisions are audited and tell the member."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import text

from common.services.claims import CLAIM_ROW, approve_claim, reject_claim
from common.sql import compile_query
from web.auth import require_admin
from web.envelope import ok, pagination
from web.handlers.admin.base import audit_context
from web.handlers.admin.schemas import AdminClaimOut
from web.ids import IdPath, path_id
from web.keys import DB
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import Model, PageQuery, examples
from web.validation import parse_body, parse_query


def _page(*, status: bool) -> Any:
    where = "WHERE claim.status = :status " if status else ""
    return compile_query(text(
        "SELECT claim.*, count(*) OVER () AS total FROM (" + CLAIM_ROW + ") AS claim "
        + where + "ORDER BY claim.id DESC LIMIT :limit OFFSET :offset"))


def _count(*, status: bool) -> Any:
    return compile_query(text("SELECT count(*) AS total FROM claims"
                              + (" WHERE status = :status" if status else "")))


_PAGES = {flag: _page(status=flag) for flag in (False, True)}
_COUNTS = {flag: _count(status=flag) for flag in (False, True)}


class ClaimsQuery(PageQuery):
    status: Literal["open", "approved", "rejected"] | None = None


class ApproveBody(Model):
    model_config = examples({"amount": 1.5})
    amount: Decimal | None = Field(None, gt=0, le=1_000_000, max_digits=14, decimal_places=2,
                                   description="what to credit; default: the offer's payout")


class ClaimRejectBody(Model):
    model_config = examples({"reason": "the network shows no conversion for this click"})
    reason: str = Field(min_length=1, max_length=500)


@describe("Every claim, newest first (filter status)", tags=["admin"], query=ClaimsQuery,
          response=AdminClaimOut, list=True)
@require_admin
async def claims(request: web.Request) -> web.Response:
    q = parse_query(request, ClaimsQuery)
    params: dict[str, Any] = {"limit": q.limit, "offset": q.offset}
    if q.status:
        params["status"] = q.status
    flag = bool(q.status)
    rows, total = await fetch_page(request.app[DB], _PAGES[flag], _COUNTS[flag], params, page=q.page)
    return ok([AdminClaimOut.of(r) for r in rows], page=pagination(q.page, q.limit, total))


async def _body(request: web.Request) -> ApproveBody:
    """The approval's optional body: none, an empty one, or ``{amount}``."""
    if not request.can_read_body:
        return ApproveBody()
    return await parse_body(request, ApproveBody)


@describe(
    "Approve an open claim: its sale is made now and credited by a worker (once)",
    tags=["admin"], path=IdPath, body=ApproveBody, response=AdminClaimOut, status=202,
    statuses={404: "No such claim",
              409: "Not open (code claim_decided), the click already has a sale "
                   "(code click_has_sale), or the offer converted since the click "
                   "(code offer_converted); the claim stays open",
              422: "amount invalid, or missing while the offer's payout is 0"},
)
@require_admin
async def approve(request: web.Request) -> web.Response:
    claim_id = path_id(request, "Claim")
    body = await _body(request)
    row = await request.app[DB].run(approve_claim, claim_id=claim_id, amount=body.amount,
                                    audit=audit_context(request))
    return ok(AdminClaimOut.of(row), status=202)


@describe("Reject an open claim with a reason", tags=["admin"], path=IdPath, body=ClaimRejectBody,
          response=AdminClaimOut,
          statuses={404: "No such claim", 409: "Not open (code claim_decided)"})
@require_admin
async def reject(request: web.Request) -> web.Response:
    claim_id = path_id(request, "Claim")
    body = await parse_body(request, ClaimRejectBody)
    row = await request.app[DB].run(reject_claim, claim_id=claim_id, reason=body.reason,
                                    audit=audit_context(request))
    return ok(AdminClaimOut.of(row))


ROUTES = [
    ("GET", "/admin/claims", claims),
    ("POST", "/admin/claims/{id:\\d+}/approve", approve),
    ("POST", "/admin/claims/{id:\\d+}/reject", reject),
]
