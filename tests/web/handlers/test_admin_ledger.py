"""GET /admin/users/{id}/ledger: one user's ledger entries for the console's user detail."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from common.models import User
from tests.fixtures.admin import admin, admin_headers, api, member, member_headers  # noqa: F401
from tests.fixtures.money_factories import fund


async def test_entries_newest_first_paged_and_filtered(api: TestClient, session: Session,
                                                       member: User,
                                                       admin_headers: dict[str, str]) -> None:
    for amount in ("1.50", "2.25", "3.00"):
        fund(session, member.id, amount)
    url = f"/api/admin/users/{member.id}/ledger"
    resp = await api.get(url, params={"limit": 2}, headers=admin_headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert [e["amount"] for e in body["data"]] == [3.0, 2.25]
    assert set(body["data"][0]) == {"id", "amount", "kind", "referenceType", "referenceId",
                                    "createdAt"}
    assert body["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
    none = await (await api.get(url, params={"kind": "prize"}, headers=admin_headers)).json()
    assert none["data"] == [] and none["pagination"]["total"] == 0
    some = await (await api.get(url, params={"kind": body["data"][0]["kind"]},
                                headers=admin_headers)).json()
    assert some["pagination"]["total"] == 3


async def test_unknown_user_kind_or_member_caller(api: TestClient, member: User,
                                                  admin_headers: dict[str, str],
                                                  member_headers: dict[str, str]) -> None:
    assert (await api.get("/api/admin/users/999999/ledger", headers=admin_headers)).status == 404
    bad = await api.get(f"/api/admin/users/{member.id}/ledger", params={"kind": "gift"},
                        headers=admin_headers)
    assert bad.status == 400
    refused = await api.get(f"/api/admin/users/{member.id}/ledger", headers=member_headers)
    assert refused.status == 403
