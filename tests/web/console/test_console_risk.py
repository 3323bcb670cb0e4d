"""The risk page (docs/risk.md) over the real routes: a member with a recorded signal is in the
review queue with that signal, and freezing their payouts from the page freezes them (audited)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.effects import Resources, bind_resources
from common.services.risk_signals import record_signal
from tests.fixtures.browser import chromium, console_server, people, tabs  # noqa: F401
from tests.fixtures.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.committed]


def test_risk_page_lists_the_queue_and_freezes_payouts(tabs, people, committed: Engine,  # type: ignore[no-untyped-def]
                                                       settings, redis_sync) -> None:
    with Session(committed) as session:
        bind_resources(session, Resources(settings, redis_sync))
        rita = make_user(session, email="rita@example.com", name="Rita Risky")
        record_signal(session, user_id=rita.id, kind="shared_signup_ip",
                      detail={"ip": "203.0.113.9", "accounts": 4}, key=f"test:{rita.id}")
        session.commit()
        rita_id = rita.id

    tab = tabs()
    tab.open("/console/")
    tab.sign_in(people["admin"].email)
    tab.page.get_by_role("link", name="Risk", exact=True).click()
    row = tab.page.get_by_role("row").filter(has_text="Rita Risky")
    expect(row).to_contain_text("shared_signup_ip")
    tab.prompt_answer = "Shared device with a banned account"
    row.get_by_role("button", name="Freeze payouts").click()
    expect(tab.page.get_by_role("status")).to_have_text("Payouts frozen")
    expect(row.get_by_role("button", name="Unfreeze payouts")).to_be_visible()
    tab.shot("risk")
    assert tab.csp_violations() == []

    with committed.connect() as conn:
        frozen: Any = conn.execute(text("SELECT payouts_frozen FROM users WHERE id = :id"),
                                   {"id": rita_id}).scalar_one()
        audited = conn.execute(text("SELECT count(*) FROM audit_log WHERE target_id = :id"),
                               {"id": str(rita_id)}).scalar_one()
    assert frozen is True and audited >= 1
