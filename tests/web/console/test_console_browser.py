"""The console and the demo page in a real Chromium against the app on a real port (and a real
Celery worker where a decision pays out). Screenshots land in .dev/artifacts/console/."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.fixtures.browser import chromium, console_server, people, tabs  # noqa: F401
from tests.fixtures.money_factories import TRACKING_URL, committed_withdrawal, make_offer

pytestmark = [pytest.mark.browser, pytest.mark.committed]
SCRIPT = "<script>window.__pwned = 1</script><b>bold</b>"


# Form controls with no label (a <label for>, or the accessible name a screen reader reads).
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter(c => c.labels.length === 0 && !c.getAttribute('aria-label')).map(c => c.outerHTML)"""


def _admin_tab(tabs: Any, people: dict[str, Any]) -> Any:
    tab = tabs()
    tab.open("/console/")
    tab.sign_in(people["admin"].email)
    expect(tab.page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return tab


def test_sign_in_dashboard_reload_and_sign_out(tabs, people) -> None:  # type: ignore[no-untyped-def]
    tab = tabs()
    response = tab.open("/console/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    tab.sign_in(people["admin"].email)
    expect(tab.page.get_by_role("heading", name="Dashboard")).to_be_visible()
    charts = tab.page.locator("canvas")
    expect(charts).to_have_count(2)
    # Chart.js drew on both: a drawn canvas has non-transparent pixels.
    drawn = tab.page.evaluate("""() => [...document.querySelectorAll('canvas')].map(c =>
        c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v !== 0))""")
    assert drawn == [True, True]
    tab.page.get_by_label("Period").select_option("7")
    expect(tab.page.get_by_text("Revenue per day, last 7 days")).to_be_visible()
    expect(tab.page.get_by_text("Live events: live")).to_be_visible()
    assert tab.low_contrast() == []
    tab.shot("dashboard")
    for section in ("Users", "Offers", "Sales and payments", "Claims", "Postback log", "Audit log"):
        tab.page.get_by_role("link", name=section, exact=True).click()
        expect(tab.page.get_by_role("heading", level=1, name=section, exact=True)).to_be_visible()
        assert tab.page.evaluate(UNLABELLED) == [] and tab.low_contrast() == []
        tab.shot(section.lower().replace(" ", "-"))
    # The time filters reach the API in a form it accepts (the audit log is the page shown now).
    with tab.page.expect_response(lambda r: "/api/admin/audit-log?" in r.url and "since=" in r.url) as answer:
        tab.page.get_by_label("Since (UTC)").fill("2020-01-01T00:00")
    assert answer.value.status == 200
    expect(tab.page.get_by_role("link", name="Risk", exact=True)).to_be_visible()

    assert tab.page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]
    tab.page.reload()
    expect(tab.page.get_by_text("Signed in as Root Admin")).to_be_visible()
    # Keyboard: the first Tab reaches the skip link, and the focus is visibly outlined.
    tab.page.keyboard.press("Tab")
    focused = tab.page.evaluate("""() => { const e = document.activeElement;
        return [e.textContent, getComputedStyle(e).outlineStyle]; }""")
    assert focused == ["Skip to content", "solid"]

    tab.page.get_by_role("button", name="Sign out").click()
    expect(tab.page.get_by_role("heading", name="SaveBucks console")).to_be_visible()
    tab.page.go_back()
    expect(tab.page.get_by_role("button", name="Sign in")).to_be_visible()
    assert "Root Admin" not in tab.page.content()
    tab.page.reload()  # the cookie was cleared and its token revoked: no session comes back
    expect(tab.page.get_by_role("button", name="Sign in")).to_be_visible()
    assert tab.csp_violations() == []


def test_approve_a_pending_payment_and_see_it_paid(tabs, people, celery_worker, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    _, payment_id = committed_withdrawal(committed, amount="150", funds="200")  # over auto-pay
    tab = _admin_tab(tabs, people)
    tab.page.get_by_role("link", name="Sales and payments", exact=True).click()
    row = tab.page.get_by_role("row").filter(has=tab.page.get_by_test_id(f"payment-{payment_id}-status"))
    row.get_by_role("button", name="Approve").click()
    expect(tab.page.get_by_role("status").first).to_be_visible()
    status = tab.page.get_by_label("Payments status")
    deadline = time.monotonic() + 30
    while True:  # the list shows what the server says now: ask again until the worker paid it
        status.select_option("")
        cell = tab.page.get_by_test_id(f"payment-{payment_id}-status")
        expect(cell).to_be_visible(timeout=15_000)  # a loaded machine: the list reloads slowly
        if cell.inner_text() == "paid":
            break
        assert time.monotonic() < deadline, "the payment was not paid in time"
        status.select_option("paid")
    tab.shot("payment-paid")
    assert tab.csp_violations() == []


def test_reject_an_offer(tabs, people, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    with Session(committed) as session:
        offer_id = make_offer(session, title="Dubious download", status="pending")
        session.commit()
    tab = _admin_tab(tabs, people)
    tab.page.get_by_role("link", name="Offers", exact=True).click()
    row = tab.page.get_by_role("row").filter(has_text="Dubious download")
    row.get_by_role("button", name="Reject").click()
    expect(row.get_by_role("cell", name="rejected")).to_be_visible()
    with committed.connect() as conn:
        status, reason = conn.execute(text(
            "SELECT status, rejection_reason FROM offers WHERE id = :id"), {"id": offer_id}).one()
    assert (status, reason) == ("rejected", "Not a fit for our members")


def test_adjusted_balance_reaches_the_member_page_live_and_chat_is_text(tabs, people, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    with Session(committed) as session:
        make_offer(session, title="Try the demo game", tracking_url=TRACKING_URL)
        session.commit()
    member = tabs()
    member.open("/")
    member.sign_in(people["member"].email)
    expect(member.page.get_by_test_id("balance")).to_have_text("$200.00")
    offer = member.page.get_by_role("listitem").filter(has_text="Try the demo game")
    offer.get_by_role("button", name="Start").click()
    link = offer.get_by_role("link", name="Open the offer")
    assert link.get_attribute("href").startswith("https://track.example.com/go?sub=")
    member.page.get_by_label("Message").fill(SCRIPT)
    member.page.get_by_role("button", name="Send").click()
    expect(member.page.locator(".chat .content").last).to_have_text(SCRIPT)
    assert member.page.evaluate("() => window.__pwned") is None
    assert member.page.locator(".chat b").count() == 0

    admin = _admin_tab(tabs, people)
    admin.open(f"/console/#/users/{people['member'].id}")
    admin.page.get_by_label("Amount in USD (negative to debit)").fill("12.50")
    admin.page.get_by_label("Reason for the adjustment").fill("Goodwill credit")
    admin.page.get_by_role("button", name="Adjust balance").click()
    expect(admin.page.get_by_test_id("user-balance")).to_have_text("$212.50")
    entries = admin.page.get_by_role("table", name="Ledger entries")
    expect(entries.get_by_role("row").filter(has_text="adjustment").filter(has_text="$12.50")).to_have_count(1)
    assert admin.page.evaluate(UNLABELLED) == [] and member.page.evaluate(UNLABELLED) == []
    assert admin.low_contrast() == [] and member.low_contrast() == []
    expect(member.page.get_by_test_id("balance")).to_have_text("$212.50")
    member.page.get_by_label("Amount (USD)").fill("10")
    member.page.get_by_label("Destination").fill("mia@example.com")
    member.page.get_by_role("button", name="Withdraw").click()
    expect(member.page.get_by_test_id("balance")).to_have_text("$202.50")
    member.shot("member")
    admin.shot("user-detail")
    assert member.csp_violations() == [] and admin.csp_violations() == []


def test_a_members_token_is_refused_by_the_console(tabs, people) -> None:  # type: ignore[no-untyped-def]
    tab = tabs()
    tab.open("/console/")
    tab.sign_in(people["member"].email)
    expect(tab.page.get_by_text("This account is not an administrator")).to_be_visible()
    # The API's own 403 message, shown where the dashboard would be.
    expect(tab.page.locator(".notice.error").last).to_have_text("Admin role required")
