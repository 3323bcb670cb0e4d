"""The admin API (docs/api.md "Admin"), one module per resource; every route is ``@require_admin``."""

from __future__ import annotations

from web.handlers.admin import (
    analytics,
    audit,
    claims,
    offers,
    payments,
    postbacks,
    risk,
    sales,
    users,
)

ROUTES = [*users.ROUTES, *offers.ROUTES, *sales.ROUTES, *payments.ROUTES, *analytics.ROUTES,
          *audit.ROUTES, *claims.ROUTES, *postbacks.ROUTES, *risk.ROUTES]
