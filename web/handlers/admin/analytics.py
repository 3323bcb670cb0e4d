"""Admin: analytics (dashboard, revenue and users by day) read from the daily rollups."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from common.services.analytics import dashboard as dashboard_figures
from common.services.analytics import revenue_series, users_series
from web.handlers.admin.schemas import DashboardOut, RevenueDay, UsersAnalyticsOut
from web.openapi import describe
from web.auth import require_admin
from web.envelope import ok
from web.keys import DB
from web.schemas import Model
from web.validation import parse_query


class PeriodQuery(Model):
    period: int = Field(30, ge=1, le=366)


@describe("Dashboard figures (snake_case keys, API.md section 7)", tags=["admin"], response=DashboardOut)
@require_admin
async def dashboard(request: web.Request) -> web.Response:
    return ok(await request.app[DB].run(dashboard_figures))


@describe("Revenue per day, days without revenue included", tags=["admin"], query=PeriodQuery, response=RevenueDay, list=True)
@require_admin
async def revenue(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    return ok(await request.app[DB].run(revenue_series, days=q.period))


@describe("Signups and active users per day, plus totals by status", tags=["admin"], query=PeriodQuery, response=UsersAnalyticsOut)
@require_admin
async def users(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    return ok(await request.app[DB].run(users_series, days=q.period))


ROUTES = [
    ("GET", "/admin/analytics/dashboard", dashboard),
    ("GET", "/admin/analytics/revenue", revenue),
    ("GET", "/admin/analytics/users", users),
]
