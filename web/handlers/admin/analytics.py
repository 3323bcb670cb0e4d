"""Admin: analytics (dashboard, revenue and users by day, offers' conversions) read from the
daily rollups."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from common.services.analytics import (
    DASHBOARD_SQL,
    REVENUE_LIVE_SQL,
    REVENUE_ROWS_SQL,
    STATE_SQL,
    dashboard_params,
    dashboard_payload,
    revenue_bounds,
    revenue_days,
    users_series,
)
from common.services.offer_analytics import OFFERS_SQL, conversion_rate, epc, offers_params
from common.services.offer_analytics import STATE_SQL as OFFERS_STATE_SQL
from common.sql import compile_query
from web.auth import require_admin
from web.envelope import ok
from web.handlers.admin.schemas import (
    DashboardOut,
    OfferAnalyticsOut,
    RevenueDay,
    UsersAnalyticsOut,
)
from web.keys import DB
from web.openapi import describe
from web.schemas import Model
from web.validation import parse_query

# Hot reads: one statement each, compiled once, on the async pool.
_DASHBOARD = compile_query(DASHBOARD_SQL)
_STATE = compile_query(STATE_SQL)
_REVENUE_ROWS = compile_query(REVENUE_ROWS_SQL)
_REVENUE_LIVE = compile_query(REVENUE_LIVE_SQL)
_OFFERS_STATE = compile_query(OFFERS_STATE_SQL)
_OFFERS = compile_query(OFFERS_SQL)


class PeriodQuery(Model):
    period: int = Field(30, ge=1, le=366)


@describe("Dashboard figures (snake_case keys, docs/api.md, Analytics)", tags=["admin"], response=DashboardOut)
@require_admin
async def dashboard(request: web.Request) -> web.Response:
    row = await request.app[DB].fetch_one(_DASHBOARD, dashboard_params())
    return ok(dashboard_payload(row))


@describe("Revenue per day, days without revenue included", tags=["admin"], query=PeriodQuery, response=RevenueDay, list=True)
@require_admin
async def revenue(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    db = request.app[DB]
    state = await db.fetch_one(_STATE)
    params = revenue_bounds(q.period, state["filled_through"] if state else None)
    rolled = await db.fetch_all(_REVENUE_ROWS, params)
    live = await db.fetch_all(_REVENUE_LIVE, params)
    return ok(revenue_days(q.period, rolled, live))


@describe("Signups and active users per day, plus totals by status", tags=["admin"], query=PeriodQuery, response=UsersAnalyticsOut)
@require_admin
async def users(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    return ok(await request.app[DB].run(users_series, days=q.period))


@describe("Clicks, conversions, conversion rate, revenue and earnings per click of each offer "
          "with any of them in the period, highest revenue first", tags=["admin"],
          query=PeriodQuery, response=OfferAnalyticsOut, list=True)
@require_admin
async def offers(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    db = request.app[DB]
    state = await db.fetch_one(_OFFERS_STATE)
    rows = await db.fetch_all(_OFFERS, offers_params(q.period, state["filled_through"] if state else None))
    return ok([OfferAnalyticsOut.of(row, conversionRate=conversion_rate(row), epc=epc(row))
               for row in rows])


ROUTES = [
    ("GET", "/admin/analytics/dashboard", dashboard),
    ("GET", "/admin/analytics/revenue", revenue),
    ("GET", "/admin/analytics/users", users),
    ("GET", "/admin/analytics/offers", offers),
]
