"""``GET /api/sales``: the user's own sales (docs/money.md "Postbacks")."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from sqlalchemy import bindparam, func, select

from common.models.offers import Offer
from common.models.sales import Sale
from common.sql import compile_query
from web.auth import current_user, require_user
from web.envelope import ok, pagination
from web.keys import DB
from web.money_schemas import SaleOut
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import PageQuery
from web.validation import parse_query

_s, _o = Sale.__table__, Offer.__table__


def _page(*, status: bool) -> Any:
    stmt = (
        select(_s, _o.c.title.label("offer_title"), func.count().over().label("total"))
        .join(_o, _o.c.id == _s.c.offer_id)
        .where(_s.c.user_id == bindparam("user_id"))
    )
    if status:
        stmt = stmt.where(_s.c.status == bindparam("status"))
    return compile_query(
        stmt.order_by(_s.c.id.desc()).limit(bindparam("limit")).offset(bindparam("offset"))
    )


def _count(*, status: bool) -> Any:
    stmt = select(func.count().label("total")).where(_s.c.user_id == bindparam("user_id"))
    if status:
        stmt = stmt.where(_s.c.status == bindparam("status"))
    return compile_query(stmt)


_PAGES = {flag: _page(status=flag) for flag in (False, True)}
_COUNTS = {flag: _count(status=flag) for flag in (False, True)}


class SalesQuery(PageQuery):
    status: Literal["pending", "approved", "rejected", "reversed"] | None = None


@describe("The user's own sales (filter status)", tags=["sales"], query=SalesQuery,
          response=SaleOut, list=True)
@require_user
async def list_sales(request: web.Request) -> web.Response:
    q = parse_query(request, SalesQuery)
    params: dict[str, Any] = {"user_id": current_user(request).user_id, "limit": q.limit,
                              "offset": q.offset}
    if q.status:
        params["status"] = q.status
    rows, total = await fetch_page(request.app[DB], _PAGES[bool(q.status)], _COUNTS[bool(q.status)], params, page=q.page)
    return ok([SaleOut.of(r) for r in rows], page=pagination(q.page, q.limit, total))


ROUTES = [("GET", "/sales", list_sales)]
