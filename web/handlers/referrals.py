"""A member's referrals (docs/api.md "Referrals"): ``GET /api/referrals`` (code, referees, earnings) and
``GET /api/referrals/referees`` (who signed up with the code, names masked). Hot reads: one
compiled statement each (common/services/referrals.py), on the async pool."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from aiohttp import web
from pydantic import Field

from common.errors import Unauthorized
from common.services.referrals import REFEREES_COUNT_SQL, REFEREES_SQL, SUMMARY_SQL
from common.sql import compile_query
from common.wire import Shape
from web.auth import current_user, require_user
from web.envelope import ok, pagination
from web.keys import DB
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import PageQuery
from web.validation import parse_query

_SUMMARY = compile_query(SUMMARY_SQL)
_REFEREES = compile_query(REFEREES_SQL)
_REFEREES_COUNT = compile_query(REFEREES_COUNT_SQL)


class ReferralsOut(Shape):
    referralCode: str = Field(description="the code a new member signs up with")
    referees: int = Field(description="members who signed up with it")
    earnings: Decimal = Field(description="referral earnings so far, net of reversals")


class RefereeOut(Shape):
    name: str = Field(description="masked: the first two characters, then ***")
    joinedAt: dt.datetime
    earned: Decimal = Field(description="what this referee's sales earned you, net of reversals")


def masked(name: str) -> str:
    """A referee's name as their referrer sees it: ``Joanna`` -> ``Jo***``; a name of two
    characters or fewer shows only its first, or the mask would be the whole name."""
    name = name.strip()
    return (name[:2] if len(name) > 2 else name[:1]) + "***"


@describe("Your referral code, how many members signed up with it, and what it earned you",
          tags=["referrals"], response=ReferralsOut)
@require_user
async def summary(request: web.Request) -> web.Response:
    row = await request.app[DB].fetch_one(_SUMMARY, {"user_id": current_user(request).user_id})
    if row is None:  # the account is gone; its token names nobody
        raise Unauthorized("Invalid or expired token")
    return ok(ReferralsOut.of(row))


@describe("Members who signed up with your code, newest first, names masked",
          tags=["referrals"], query=PageQuery, response=RefereeOut, list=True)
@require_user
async def referees(request: web.Request) -> web.Response:
    q = parse_query(request, PageQuery)
    params = {"user_id": current_user(request).user_id, "limit": q.limit, "offset": q.offset}
    rows, total = await fetch_page(request.app[DB], _REFEREES, _REFEREES_COUNT, params,
                                   page=q.page)
    return ok([RefereeOut.of(r, name=masked(r["name"])) for r in rows],
              page=pagination(q.page, q.limit, total))


ROUTES = [
    ("GET", "/referrals", summary),
    ("GET", "/referrals/referees", referees),
]
