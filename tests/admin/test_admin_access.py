"""Every admin route: anonymous 401, a signed-in user 403 (and nothing written)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.models import AuditLog
from web.handlers.admin import ROUTES

CALLS = [(method, path.replace("{id:\\d+}", "1")) for method, path, _ in ROUTES]


def test_every_contract_route_is_served() -> None:
    paths = {(m, p.replace("{id:\\d+}", "{id}")) for m, p, _ in ROUTES}
    assert paths == {
        ("GET", "/admin/users"), ("GET", "/admin/users/{id}"), ("PUT", "/admin/users/{id}/status"),
        ("POST", "/admin/users/{id}/adjust-balance"), ("GET", "/admin/offers"),
        ("POST", "/admin/offers"), ("GET", "/admin/offers/{id}"), ("PUT", "/admin/offers/{id}"),
        ("DELETE", "/admin/offers/{id}"), ("POST", "/admin/offers/{id}/approve"),
        ("POST", "/admin/offers/{id}/reject"), ("GET", "/admin/sales"),
        ("POST", "/admin/sales/{id}/approve"), ("POST", "/admin/sales/{id}/reject"),
        ("GET", "/admin/payments"), ("POST", "/admin/payments/{id}/approve"),
        ("POST", "/admin/payments/{id}/reject"), ("GET", "/admin/analytics/dashboard"),
        ("GET", "/admin/analytics/revenue"), ("GET", "/admin/analytics/users"),
        ("GET", "/admin/audit-log"),
    }


@pytest.mark.parametrize(("method", "path"), CALLS)
async def test_anonymous_gets_401(api: TestClient, method: str, path: str) -> None:
    resp = await api.request(method, "/api" + path, json={})
    assert resp.status == 401
    assert (await resp.json())["success"] is False


@pytest.mark.parametrize(("method", "path"), CALLS)
async def test_user_gets_403(api: TestClient, session: Session, member_headers: dict[str, str],
                             method: str, path: str) -> None:
    resp = await api.request(method, "/api/v1" + path, json={"status": "banned", "amount": 5,
                                                             "reason": "x"},
                             headers={**member_headers, "Idempotency-Key": "k"})
    assert resp.status == 403
    assert session.scalar(select(func.count()).select_from(AuditLog)) == 0
