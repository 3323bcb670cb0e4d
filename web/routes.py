"""The route table. Every API route answers below ``/api`` and below ``/api/v1``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from web.health import health, live

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]
API_PREFIXES = ("/api", "/api/v1")


def api_routes() -> list[Route]:
    """(method, path below the prefix, handler) for every resource module."""
    from web.handlers import (
        admin,
        auth,
        chat,
        claims,
        clicks,
        leaderboard,
        me,
        notifications,
        offers,
        payments,
        postbacks,
        referrals,
        sales,
    )

    return [
        *auth.ROUTES, *chat.ROUTES, *claims.ROUTES, *clicks.ROUTES, *me.ROUTES,
        *notifications.ROUTES, *offers.ROUTES, *payments.ROUTES, *postbacks.ROUTES,
        *sales.ROUTES, *referrals.ROUTES,
        *admin.ROUTES, *leaderboard.ROUTES,
    ]


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health, allow_head=True)
    app.router.add_get("/health/live", live, allow_head=True)
    for method, path, handler in api_routes():
        for prefix in API_PREFIXES:
            app.router.add_route(method, prefix + path, handler)
