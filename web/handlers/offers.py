"""The public offer catalogue (docs/api.md "Operations"). Hot reads: statements compiled once."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy import bindparam, func, literal_column, select

from common.errors import NotFound
from common.models.offers import Offer
from common.sql import compile_query
from web.auth import is_current_admin
from web.envelope import ok, ok_fields, ok_from, pagination
from web.ids import IdPath, path_id
from web.keys import DB, OFFER_PAGES
from web.money_schemas import CategoryCount, OfferOut
from web.openapi import describe
from web.page_cache import matches
from web.paging import fetch_page
from web.schemas import PageQuery
from web.validation import parse_query

_o = Offer.__table__
_COLUMNS = (_o.c.id, _o.c.title, _o.c.description, _o.c.category, _o.c.network, _o.c.payout,
            _o.c.status, _o.c.created_at)


def _filters(stmt: Any, *, category: bool, search: bool) -> Any:
    # A literal status, so that the partial indexes (WHERE status = 'active') serve prepared plans.
    stmt = stmt.where(_o.c.status == literal_column("'active'"))
    if category:
        stmt = stmt.where(_o.c.category == bindparam("category"))
    if search:
        stmt = stmt.where(_o.c.title.ilike(bindparam("search"), escape="\\"))
    return stmt


def _page_query(*, category: bool, search: bool) -> Any:
    # The total rides on the page's rows as a scalar subquery (evaluated once): one round trip,
    # and each part walks the partial index that suits it.
    total = _filters(select(func.count()), category=category, search=search).scalar_subquery()
    stmt = _filters(select(*_COLUMNS, total.label("total")), category=category, search=search)
    stmt = stmt.order_by(_o.c.id.desc()).limit(bindparam("limit")).offset(bindparam("offset"))
    return compile_query(stmt)


def _count_query(*, category: bool, search: bool) -> Any:
    return compile_query(_filters(select(func.count().label("total")), category=category, search=search))


_PAGES = {(c, s): _page_query(category=c, search=s) for c in (False, True) for s in (False, True)}
_COUNTS = {(c, s): _count_query(category=c, search=s) for c in (False, True) for s in (False, True)}
_ONE = compile_query(select(*_COLUMNS).where(_o.c.id == bindparam("id")))
_CATEGORIES = compile_query(
    select(_o.c.category, func.count().label("count"))
    .where(_o.c.status == literal_column("'active'"))
    .group_by(_o.c.category)
    .order_by(literal_column("count").desc(), _o.c.category)
)


class OfferQuery(PageQuery):
    category: str | None = Field(None, max_length=64)
    search: str | None = Field(None, max_length=100)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@describe("Active offers (filters category, search)", tags=["offers"], query=OfferQuery,
          response=OfferOut, list=True)
async def list_offers(request: web.Request) -> web.Response:
    # The same for every caller (the key is the query, never the caller): a page is read at most
    # once per OFFERS_CACHE_SECONDS per process (web/page_cache.py).
    q = parse_query(request, OfferQuery)
    key = (bool(q.category), bool(q.search))
    params: dict[str, Any] = {"limit": q.limit, "offset": q.offset}
    if q.category:
        params["category"] = q.category
    if q.search:
        params["search"] = _like(q.search)

    async def read() -> bytes:
        rows, total = await fetch_page(request.app[DB], _PAGES[key], _COUNTS[key], params,
                                       page=q.page)
        return ok_fields([OfferOut.of(r) for r in rows], pagination(q.page, q.limit, total))

    page = await request.app[OFFER_PAGES].get((q.category, q.search, q.page, q.limit), read)
    if matches(request.headers.get("If-None-Match"), page.etag):
        return web.Response(status=304, headers={"ETag": page.etag})
    return ok_from(page.fields, headers={"ETag": page.etag})


@describe("One offer: 404 unless active (a current, active admin sees every status)", tags=["offers"],
          path=IdPath, response=OfferOut, statuses={404: "No such active offer"})
async def get_offer(request: web.Request) -> web.Response:
    offer_id = path_id(request, "Offer")
    row = await request.app[DB].fetch_one(_ONE, {"id": offer_id})
    if row is None or (row["status"] != "active" and not await is_current_admin(request)):
        raise NotFound("Offer not found")
    return ok(OfferOut.of(row))


@describe("Active offer counts by category", tags=["offers"], response=CategoryCount, list=True)
async def categories(request: web.Request) -> web.Response:
    rows = await request.app[DB].fetch_all(_CATEGORIES)
    return ok([CategoryCount.of(r) for r in rows])


ROUTES = [
    ("GET", "/offers", list_offers),
    ("GET", "/offers/categories", categories),
    ("GET", "/offers/{id:\\d+}", get_offer),
]
