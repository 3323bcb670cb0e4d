"""Clicks (docs/money.md "Clicks"): ``POST /offers/{id}/click`` starts an offer through us, and
``GET /clicks`` lists the member's own.

The click is the hot path: ONE statement on the autocommit pool (``common/services/clicks.py``
``CLICK``) counts the member's rate limit (``RATE_LIMIT_CLICK``), reads the offer and stores the
click; no Redis call, no thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import sqlalchemy.exc
from aiohttp import web
from sqlalchemy import bindparam, func, literal_column, select

from common.config import Settings
from common.errors import Conflict, NotFound, Unauthorized
from common.models import Claim, Click, Offer, Sale
from common.services.claims import claim_refusal, converted
from common.services.clicks import (
    CLICK,
    OLDEST_STAMP,
    click_limit_params,
    click_refusal,
    known_refusal,
    new_click_id,
)
from common.services.risk_signals import click_risk_params
from common.sql import compile_query
from web.auth import current_user, require_user
from web.db import Row
from web.envelope import ok, ok_data, pagination
from web.ids import IdPath, path_id
from web.keys import CLICK_LIMITS, CLIENT_IP, DB, SETTINGS
from web.money_schemas import ClickCreatedOut, ClickOut
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import PageQuery
from web.validation import parse_query

_c, _o, _s, _cl = Click.__table__, Offer.__table__, Sale.__table__, Claim.__table__
HOT_CLICK = compile_query(CLICK)
_OLDEST = compile_query(OLDEST_STAMP)
_PAGE = compile_query(
    select(_c.c.public_id, _c.c.offer_id, _o.c.title.label("offer_title"), _c.c.created_at,
           _s.c.id.label("sale_id"), _s.c.status.label("sale_status"),
           _cl.c.id.label("claim_id"),
           literal_column(converted("clicks.user_id", "clicks.offer_id", "clicks.created_at"))
           .label("offer_converted"),
           func.count().over().label("total"))
    .join(_o, _o.c.id == _c.c.offer_id)
    .outerjoin(_s, _s.c.click_id == _c.c.public_id)
    .outerjoin(_cl, _cl.c.click_id == _c.c.public_id)
    .where(_c.c.user_id == bindparam("user_id"))
    .order_by(_c.c.id.desc()).limit(bindparam("limit")).offset(bindparam("offset"))
)
_COUNT = compile_query(select(func.count().label("total")).where(_c.c.user_id == bindparam("user_id")))
MAX_USER_AGENT = 512
# The click's only foreign keys a request can miss are its member's (the offer is read by the
# same statement): raw on the web's pool, wrapped by SQLAlchemy on a bound test database.
_NO_MEMBER = (psycopg.errors.ForeignKeyViolation, sqlalchemy.exc.IntegrityError)


class OfferNotTrackable(Conflict):
    code = "offer_not_trackable"


@describe(
    "Start an offer: a click with an unguessable id, and the network's URL to send the member to",
    tags=["clicks"], path=IdPath, response=ClickCreatedOut, status=201,
    statuses={404: "No such active offer",
              409: "The offer is active but has no tracking URL yet (code offer_not_trackable)",
              429: "Too many clicks (RATE_LIMIT_CLICK per user)"},
)
@require_user
async def click(request: web.Request) -> web.Response:
    settings, user_id = request.app[SETTINGS], current_user(request).user_id
    limit, spent = settings.rate_limit_click, request.app[CLICK_LIMITS]
    async with spent.turn(user_id):
        now = dt.datetime.now(dt.UTC)
        known = known_refusal(spent, limit, user_id, now)
        if known is not None:
            raise known
        row = await _stored_click(request, user_id, now)
        if not row["counted"]:
            oldest = await request.app[DB].fetch_one(
                _OLDEST, {"user_id": user_id, **click_limit_params(limit, now)})
            raise click_refusal(spent, limit, user_id, oldest["oldest"] if oldest else None, now)
    if row["status"] != "active":
        raise NotFound("Offer not found")
    if row["public_id"] is None:
        raise OfferNotTrackable("This offer cannot be started yet: it has no tracking URL")
    return ok_data(row["answer"], status=201)  # ClickCreatedOut, written by the statement


async def _stored_click(request: web.Request, user_id: int, now: dt.datetime) -> Row:
    """The click's one statement (always one row). An id that cannot name an offer (0, beyond
    64 bits) is a 404 before it, not counted. A token whose member no longer exists (no path of
    ours deletes one: a restore, a manual delete) names no account: 401."""
    settings, offer_id = request.app[SETTINGS], path_id(request, "Offer")
    agent = request.headers.get("User-Agent")
    try:
        row = await request.app[DB].fetch_one(HOT_CLICK, {
            "offer_id": offer_id, "public_id": new_click_id(), "user_id": user_id,
            "ip": request[CLIENT_IP], "user_agent": agent[:MAX_USER_AGENT] if agent else None,
            **click_limit_params(settings.rate_limit_click, now),
            **click_risk_params(settings, request[CLIENT_IP]),
        })
    except _NO_MEMBER:
        raise Unauthorized("Invalid or expired token") from None
    assert row is not None
    return row


def click_json(row: dict[str, Any], settings: Settings, now: dt.datetime) -> dict[str, Any]:
    refusal = claim_refusal(clicked_at=row["created_at"], has_sale=row["sale_id"] is not None,
                            offer_converted=row["offer_converted"], now=now, min_age_seconds=settings.claim_min_age_seconds,
                            max_age_days=settings.claim_max_age_days)
    return ClickOut.of(row, clickId=row["public_id"],
                       claimable=row["claim_id"] is None and refusal is None)


@describe("The member's own clicks, newest first", tags=["clicks"], query=PageQuery,
          response=ClickOut, list=True)
@require_user
async def list_clicks(request: web.Request) -> web.Response:
    q = parse_query(request, PageQuery)
    params = {"user_id": current_user(request).user_id, "limit": q.limit, "offset": q.offset}
    rows, total = await fetch_page(request.app[DB], _PAGE, _COUNT, params, page=q.page)
    settings, now = request.app[SETTINGS], dt.datetime.now(dt.UTC)
    return ok([click_json(r, settings, now) for r in rows], page=pagination(q.page, q.limit, total))


ROUTES = [
    ("POST", "/offers/{id:\\d+}/click", click),
    ("GET", "/clicks", list_clicks),
]
