"""Every admin route: anonymous 401, a signed-in user 403 (and nothing written)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.models import AuditLog, User
from common.services.accounts import set_user_role, set_user_status
from tests.fixtures.admin import admin, admin_headers, api, member, member_headers  # noqa: F401
from tests.fixtures.money_factories import make_offer
from web.handlers.admin import ROUTES

CALLS = [(method, path.replace("{id:\\d+}", "1")) for method, path, _ in ROUTES]


def test_every_contract_route_is_served() -> None:
    paths = {(m, p.replace("{id:\\d+}", "{id}")) for m, p, _ in ROUTES}
    assert paths == {
        ("GET", "/admin/users"), ("GET", "/admin/users/{id}"), ("GET", "/admin/users/{id}/ledger"),
        ("PUT", "/admin/users/{id}/status"),
        ("POST", "/admin/users/{id}/adjust-balance"), ("GET", "/admin/offers"),
        ("POST", "/admin/offers"), ("GET", "/admin/offers/{id}"), ("PUT", "/admin/offers/{id}"),
        ("DELETE", "/admin/offers/{id}"), ("POST", "/admin/offers/{id}/approve"),
        ("POST", "/admin/offers/{id}/reject"), ("GET", "/admin/sales"),
        ("POST", "/admin/sales/{id}/approve"), ("POST", "/admin/sales/{id}/reject"),
        ("GET", "/admin/payments"), ("POST", "/admin/payments/{id}/approve"),
        ("POST", "/admin/payments/{id}/reject"), ("GET", "/admin/analytics/dashboard"),
        ("GET", "/admin/analytics/revenue"), ("GET", "/admin/analytics/users"),
        ("GET", "/admin/analytics/offers"),
        ("GET", "/admin/audit-log"), ("GET", "/admin/claims"),
        ("POST", "/admin/claims/{id}/approve"), ("POST", "/admin/claims/{id}/reject"),
        ("GET", "/admin/postbacks"), ("POST", "/admin/postbacks/{id}/replay"),
        ("GET", "/admin/risk"), ("POST", "/admin/users/{id}/risk/clear"),
        ("PUT", "/admin/users/{id}/payouts"),
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


async def _until_status(api: TestClient, url: str, headers: dict[str, str], expected: int) -> int:
    """Poll until ``url`` answers ``expected`` (account changes travel through pub/sub)."""
    end = time.monotonic() + 5.0
    while True:
        status = (await api.get(url, headers=headers)).status
        if status == expected or time.monotonic() > end:
            return status
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(("change", "refused"), [("demoted", 401), ("banned", 403)])
async def test_inactive_offers_only_for_a_current_admin(api: TestClient, bound_db, session: Session,  # type: ignore[no-untyped-def]
                                                        admin: User, admin_headers: dict[str, str],
                                                        change: str, refused: int) -> None:
    """The token still says admin and has not expired; the account no longer is one."""
    paused = make_offer(session, status="paused")
    session.commit()
    offer = f"/api/offers/{paused}"
    assert (await api.get(offer, headers=admin_headers)).status == 200
    who = {"actor_id": None, "user_id": admin.id, "reason": "t", "ip": None, "trace_id": None}
    if change == "demoted":
        await bound_db.run(set_user_role, role="user", **who)
    else:
        await bound_db.run(set_user_status, status="banned", **who)
    # Once the admin routes refuse this token, the offer detail must too (as the public: 404).
    assert await _until_status(api, "/api/admin/users", admin_headers, refused) == refused
    resp = await api.get(offer, headers=admin_headers)
    assert resp.status == 404, await resp.json()
