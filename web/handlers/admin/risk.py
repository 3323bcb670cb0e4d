"""Admin: risk (API.md section 13, docs/risk.md): the review queue, clearing a member's score, and
freezing a member's withdrawals. Every write is audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import Field

from common.services.risk import clear_risk, review_queue, set_payouts_frozen
from web.auth import require_admin
from web.envelope import ok, pagination
from web.handlers.admin.base import audit_context
from web.handlers.admin.schemas import PayoutsFrozenOut, RiskOut, RiskSignalOut, RiskUserOut
from web.ids import IdPath, path_id
from web.keys import DB
from web.openapi import describe
from web.schemas import Model, PageQuery, examples
from web.validation import parse_body, parse_query


class RiskQuery(PageQuery):
    minScore: Decimal = Field(Decimal(0), ge=0, le=Decimal("9999999999.99"), max_digits=12,
                              decimal_places=2, description="only members scoring at least this")


class RiskClearBody(Model):
    model_config = examples({"reason": "Shared campus Wi-Fi, checked with the member"})
    reason: str = Field(min_length=1, max_length=500)


class PayoutsBody(Model):
    model_config = examples({"frozen": True, "reason": "Chargeback from the network under review"})
    frozen: bool
    reason: str = Field(min_length=1, max_length=500)


def risk_json(risk: dict[str, Any]) -> dict[str, Any]:
    """``RiskOut`` of ``common.services.risk.user_risk``."""
    return RiskOut.of(score=risk["score"],
                      signals=[RiskSignalOut.of(s) for s in risk["signals"]])


@describe("Members by risk score, highest first, with their newest signals (filter minScore)", tags=["admin"], query=RiskQuery, response=RiskUserOut, list=True)
@require_admin
async def queue(request: web.Request) -> web.Response:
    q = parse_query(request, RiskQuery)
    rows, total = await request.app[DB].run(review_queue, min_score=q.minScore, limit=q.limit,
                                            offset=q.offset)
    data = [RiskUserOut.of(row, signals=[RiskSignalOut.of(s) for s in row["signals"]])
            for row in rows]
    return ok(data, page=pagination(q.page, q.limit, total))


@describe("Clear a member's risk score (signals kept as history, no longer counted)", tags=["admin"], path=IdPath, body=RiskClearBody, statuses={404: "No such user"}, response=RiskOut)
@require_admin
async def clear(request: web.Request) -> web.Response:
    user_id = path_id(request, "User")  # before the body: an id naming no row is a 404
    body = await parse_body(request, RiskClearBody)
    risk = await request.app[DB].run(clear_risk, user_id=user_id, reason=body.reason,
                                     audit=audit_context(request))
    return ok(risk_json(risk))


@describe("Freeze or unfreeze a member's withdrawals", tags=["admin"], path=IdPath, body=PayoutsBody, statuses={404: "No such user"}, response=PayoutsFrozenOut)
@require_admin
async def payouts(request: web.Request) -> web.Response:
    user_id = path_id(request, "User")
    body = await parse_body(request, PayoutsBody)
    frozen = await request.app[DB].run(set_payouts_frozen, user_id=user_id, frozen=body.frozen,
                                       reason=body.reason, audit=audit_context(request))
    return ok(PayoutsFrozenOut.of(userId=user_id, payoutsFrozen=frozen, reason=body.reason),
              message="Payouts frozen" if frozen else "Payouts unfrozen")


ROUTES = [
    ("GET", "/admin/risk", queue),
    ("POST", "/admin/users/{id:\\d+}/risk/clear", clear),
    ("PUT", "/admin/users/{id:\\d+}/payouts", payouts),
]
