"""Missing-credit claims of a member (docs/money.md "Clicks"): file one on a click, read their own.

Filing is a write (``common/services/claims.py`` ``file_claim``, in a unit of work); the lists are
compiled reads on the autocommit pool. ``ClaimOut`` (web/money_schemas.py) is the one shape of a
``Claim``; the admin routes' ``AdminClaimOut`` extends it.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field
from sqlalchemy import text

from common.errors import NotFound
from common.services.claims import CLAIM_ROW, file_claim
from common.sql import compile_query
from web.auth import current_user, require_user
from web.envelope import ok, pagination
from web.ids import IdPath, path_id
from web.keys import DB, SETTINGS
from web.money_schemas import ClaimOut
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import Model, PageQuery, examples
from web.validation import parse_body, parse_query

_PAGE = compile_query(text(
    "SELECT claim.*, count(*) OVER () AS total FROM (" + CLAIM_ROW + ") AS claim "
    "WHERE claim.user_id = :user_id ORDER BY claim.id DESC LIMIT :limit OFFSET :offset"))
_COUNT = compile_query(text("SELECT count(*) AS total FROM claims WHERE user_id = :user_id"))
_ONE = compile_query(text(CLAIM_ROW + " WHERE cl.id = :id AND cl.user_id = :user_id"))


class ClaimBody(Model):
    model_config = examples({"clickId": "Yq3X0bV7sK2nP9rT4wLm1A", "message": "I installed the game and reached level 10 on 2 May."})
    clickId: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=2000,
                         description="what the member did, for the admin who decides")


@describe(
    "Claim a conversion the network never reported, on one of the member's clicks",
    tags=["claims"], body=ClaimBody, response=ClaimOut, status=201,
    statuses={409: "The click already has a claim (code claim_exists)",
              422: "Not claimable; code unknown_click, click_has_sale, offer_converted (the "
                   "member has a sale of the offer made since the click), claim_too_early "
                   "(before CLAIM_MIN_AGE_SECONDS) or claim_too_late (after CLAIM_MAX_AGE_DAYS)"},
)
@require_user
async def create_claim(request: web.Request) -> web.Response:
    body = await parse_body(request, ClaimBody)
    settings = request.app[SETTINGS]
    row = await request.app[DB].run(
        file_claim, user_id=current_user(request).user_id, click_id=body.clickId,
        message=body.message, now=dt.datetime.now(dt.UTC),
        min_age_seconds=settings.claim_min_age_seconds, max_age_days=settings.claim_max_age_days)
    return ok(ClaimOut.of(row), status=201)


@describe("The member's own claims, newest first", tags=["claims"], query=PageQuery,
          response=ClaimOut, list=True)
@require_user
async def list_claims(request: web.Request) -> web.Response:
    q = parse_query(request, PageQuery)
    params = {"user_id": current_user(request).user_id, "limit": q.limit, "offset": q.offset}
    rows, total = await fetch_page(request.app[DB], _PAGE, _COUNT, params, page=q.page)
    return ok([ClaimOut.of(r) for r in rows], page=pagination(q.page, q.limit, total))


@describe("One of the member's claims", tags=["claims"], path=IdPath, response=ClaimOut,
          statuses={404: "No such claim of this member"})
@require_user
async def get_claim(request: web.Request) -> web.Response:
    row = await request.app[DB].fetch_one(
        _ONE, {"id": path_id(request, "Claim"), "user_id": current_user(request).user_id})
    if row is None:
        raise NotFound("Claim not found")
    return ok(ClaimOut.of(row))


ROUTES = [
    ("POST", "/claims", create_claim),
    ("GET", "/claims", list_claims),
    ("GET", "/claims/{id:\\d+}", get_claim),
]
