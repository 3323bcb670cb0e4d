"""The risk page (API.md section 13) against stand-ins of its two routes, which another change
brings: the page appears once GET /api/admin/risk answers, lists users by score with their
signals, and freezes payouts through PUT /api/admin/users/{id}/payouts. (Without the routes the
page is hidden: test_console_browser.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import expect

from tests.fixtures.browser import app_routes, chromium, console_server, people, tabs  # noqa: F401
from web.envelope import ok, pagination

pytestmark = [pytest.mark.browser, pytest.mark.committed]
FROZEN: list[dict[str, Any]] = []


async def risk(request: web.Request) -> web.Response:
    rows = [{"id": 7, "name": "Rita Risky", "email": "rita@example.com", "score": 85,
             "payoutsFrozen": False,
             "signals": [{"kind": "shared_signup_ip", "detail": {}, "createdAt": None}]}]
    return ok(rows, page=pagination(1, 20, 1))


async def payouts(request: web.Request) -> web.Response:
    FROZEN.append({"id": request.match_info["id"], **await request.json()})
    return ok({"id": 7, "payoutsFrozen": True}, message="Payouts frozen")


@pytest.mark.parametrize("app_routes", [[("GET", "/api/admin/risk", risk),
                                         ("PUT", "/api/admin/users/{id}/payouts", payouts)]])
def test_risk_page_lights_up_with_its_routes(tabs, people) -> None:  # type: ignore[no-untyped-def]
    tab = tabs()
    tab.open("/console/")
    tab.sign_in(people["admin"].email)
    tab.page.get_by_role("link", name="Risk", exact=True).click()
    row = tab.page.get_by_role("row").filter(has_text="Rita Risky")
    expect(row).to_contain_text("shared_signup_ip")
    tab.prompt_answer = "Shared device with a banned account"
    row.get_by_role("button", name="Freeze payouts").click()
    expect(tab.page.get_by_role("status")).to_have_text("Payouts frozen")
    assert FROZEN == [{"id": "7", "frozen": True, "reason": "Shared device with a banned account"}]
    tab.shot("risk")
    assert tab.csp_violations() == []
