"""Missing-credit claims (docs/money.md "Clicks"): the claim window, one claim per click, an admin's
approval credited once through the normal approval path (a real worker, and twenty concurrent
approvals), a rejection, and how claims and postbacks for one click settle each other."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import (
    AuditLog,
    Claim,
    LedgerEntry,
    Notification,
    OutboxEvent,
    PostbackLog,
    Sale,
    User,
)
from common.services.sales import approve_sale
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import live_client, money_client, money_settings  # noqa: F401
from tests.fixtures.money_factories import generic_params, make_click, make_offer
from tests.fixtures.processes import wait_for

DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


async def _claim(client, settings: Settings, user: User, click_id: str, message: str = "I did it"):  # type: ignore[no-untyped-def]
    resp = await client.post("/api/claims", json={"clickId": click_id, "message": message},
                             headers=auth_headers(settings, user))
    return resp.status, await resp.json()


def _balances(session: Session, user: User) -> tuple[Decimal, Decimal]:
    session.expire_all()
    fresh = session.get(User, user.id)
    assert fresh is not None
    return fresh.balance, fresh.pending_balance


async def test_the_claim_window_edges(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    clicks = [make_click(session, user.id, offer_id) for _ in range(4)]
    session.commit()
    created = clicks[0][1]  # one transaction: every click has the same created_at
    assert {c[1] for c in clicks} == {created}
    cases = [(DAY - SECOND, 422, "claim_too_early"), (DAY, 201, None),
             (30 * DAY, 201, None), (30 * DAY + SECOND, 422, "claim_too_late")]
    for (click_id, _), (age, expected, code) in zip(clicks, cases, strict=True):
        with freeze_time(created + age, real_asyncio=True):
            status, body = await _claim(money_client, money_settings, user, click_id)
            listed = await (await money_client.get(
                "/api/clicks", headers=auth_headers(money_settings, user))).json()
        assert (status, body.get("code")) == (expected, code), (age, body)
        claimable = {c["clickId"]: c["claimable"] for c in listed["data"]}
        assert claimable[click_id] is False  # claimed now, or outside the window
        if expected == 201:
            assert body["data"]["status"] == "open" and body["data"]["clickId"] == click_id
    assert session.query(Claim).count() == 2


async def test_claim_refusals(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, other = make_user(session), make_user(session)
    offer_id = make_offer(session, external_id="o1")
    mine, _ = make_click(session, user.id, make_offer(session, external_id="o2"), age=2 * DAY)
    theirs, _ = make_click(session, other.id, offer_id, age=2 * DAY)
    sold, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    credit = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", click_id=sold)
    assert (await money_client.get("/api/postbacks/testnet", params=credit)).status == 200

    for click_id, code in ((theirs, "unknown_click"), ("x" * 22, "unknown_click"),
                           ("../../etc", "unknown_click"), (sold, "click_has_sale")):
        status, body = await _claim(money_client, money_settings, user, click_id)
        assert (status, body["code"]) == (422, code), body
        assert body["errors"][0].startswith("clickId:")
    status, first = await _claim(money_client, money_settings, user, mine)
    assert status == 201
    status, second = await _claim(money_client, money_settings, user, mine, "again")
    assert (status, second["code"]) == (409, "claim_exists")
    bad = await money_client.post("/api/claims", json={"clickId": mine, "message": ""},
                                  headers=auth_headers(money_settings, user))
    assert bad.status == 422

    own = await (await money_client.get("/api/claims", headers=auth_headers(money_settings, user))).json()
    assert [c["id"] for c in own["data"]] == [first["data"]["id"]]
    assert own["data"][0] == {**first["data"]}
    claim_url = f"/api/claims/{first['data']['id']}"
    assert (await money_client.get(claim_url, headers=auth_headers(money_settings, user))).status == 200
    assert (await money_client.get(claim_url, headers=auth_headers(money_settings, other))).status == 404
    others = await (await money_client.get("/api/claims", headers=auth_headers(money_settings, other))).json()
    assert others["data"] == []


async def _open_claim(client, session: Session, settings: Settings, user: User, offer_id: int) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    status, body = await _claim(client, settings, user, click_id)
    assert status == 201, body
    return click_id, body["data"]["id"]


async def test_approved_claim_then_a_late_postback_credits_once(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")  # payout 7.00
    click_id, claim_id = await _open_claim(money_client, session, money_settings, user, offer_id)
    admin_headers = auth_headers(money_settings, admin)

    resp = await money_client.post(f"/api/admin/claims/{claim_id}/approve", headers=admin_headers)
    body = await resp.json()
    assert resp.status == 202, body
    assert (body["data"]["status"], body["data"]["amount"], body["data"]["saleStatus"]) == (
        "approved", 7.0, "pending")
    sale = session.get(Sale, body["data"]["saleId"])
    assert sale is not None and (sale.click_id, sale.claim_id, sale.network) == (click_id, claim_id, "claim")
    assert _balances(session, user) == (0, Decimal("7.00"))
    assert approve_sale(session, sale_id=sale.id)  # what the enqueued task does
    assert not approve_sale(session, sale_id=sale.id)  # delivered twice: nothing more
    session.commit()
    assert _balances(session, user) == (Decimal("7.00"), 0)

    late = generic_params(user_id=user.id, offer_id="o1", txn_id="net-1", click_id=click_id)
    for _ in range(2):
        resp = await money_client.get("/api/postbacks/testnet", params=late)
        assert resp.status == 200
        assert (await resp.json())["data"] == {"saleId": sale.id, "status": "approved"}
    assert session.query(Sale).count() == 1
    # The first report makes the network's transaction the claim's sale's; the second repeats it.
    assert [r.outcome for r in session.query(PostbackLog).order_by(PostbackLog.id)] == ["claimed", "duplicate"]
    session.refresh(sale)
    assert (sale.network, sale.external_id, sale.claim_id) == ("testnet", "net-1", claim_id)
    assert _balances(session, user) == (Decimal("7.00"), 0)
    assert session.query(LedgerEntry).filter_by(user_id=user.id).count() == 1

    events = [(e.event, e.data) for e in session.query(OutboxEvent).filter_by(event="claim:status")]
    assert events == [("claim:status", {"claimId": claim_id, "status": "approved", "amount": 7.0})]
    note = session.query(Notification).filter_by(type="claim_approved").one()
    assert note.user_id == user.id and note.data == {"claimId": claim_id, "amount": 7.0}
    audit = session.query(AuditLog).filter_by(action="claim.approve").one()
    assert (audit.actor_id, audit.target_id, audit.after["status"]) == (admin.id, str(claim_id), "approved")
    again = await money_client.post(f"/api/admin/claims/{claim_id}/approve", headers=admin_headers)
    assert (again.status, (await again.json())["code"]) == (409, "claim_decided")
    member = await (await money_client.get(f"/api/claims/{claim_id}", headers=auth_headers(money_settings, user))).json()
    assert (member["data"]["status"], member["data"]["amount"]) == ("approved", 7.0)


async def test_a_postback_before_the_approval_makes_it_409(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    click_id, claim_id = await _open_claim(money_client, session, money_settings, user, offer_id)
    credit = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", click_id=click_id)
    assert (await money_client.get("/api/postbacks/testnet", params=credit)).status == 200
    resp = await money_client.post(f"/api/admin/claims/{claim_id}/approve",
                                   headers=auth_headers(money_settings, admin), json={"amount": 3})
    assert (resp.status, (await resp.json())["code"]) == (409, "click_has_sale")
    assert session.get(Claim, claim_id).status == "open"  # type: ignore[union-attr]
    assert session.query(Sale).count() == 1
    assert _balances(session, user) == (0, Decimal("7.00"))
    assert session.query(OutboxEvent).filter_by(event="claim:status").count() == 0


async def test_the_sale_of_an_approved_claim_cannot_be_rejected(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Between the approval and the worker's credit, the claim's sale is pending: an admin's
    rejection then would leave the claim approved with nothing credited."""
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    _, claim_id = await _open_claim(money_client, session, money_settings, user, offer_id)
    headers = auth_headers(money_settings, admin)
    approved = await (await money_client.post(f"/api/admin/claims/{claim_id}/approve",
                                              headers=headers)).json()
    sale_id = approved["data"]["saleId"]

    resp = await money_client.post(f"/api/admin/sales/{sale_id}/reject", headers=headers)
    body = await resp.json()
    assert (resp.status, body["code"]) == (409, "claim_sale"), body
    assert f"claim {claim_id}" in body["message"]
    session.expire_all()
    assert session.get(Sale, sale_id).status == "pending"  # type: ignore[union-attr]
    assert session.get(Claim, claim_id).status == "approved"  # type: ignore[union-attr]
    assert session.query(AuditLog).filter_by(action="sale.reject").count() == 0
    assert _balances(session, user) == (0, Decimal("7.00"))
    assert approve_sale(session, sale_id=sale_id)  # the worker still credits it
    session.commit()
    assert _balances(session, user) == (Decimal("7.00"), 0)
    again = await money_client.post(f"/api/admin/sales/{sale_id}/reject", headers=headers)
    assert (again.status, (await again.json())["code"]) == (409, "conflict")  # approved now


async def test_reject_and_admin_list(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    _, rejected_id = await _open_claim(money_client, session, money_settings, user, offer_id)
    _, open_id = await _open_claim(money_client, session, money_settings, user, offer_id)
    headers = auth_headers(money_settings, admin)
    assert (await money_client.post(f"/api/admin/claims/{rejected_id}/reject", headers=headers,
                                    json={})).status == 422
    resp = await money_client.post(f"/api/admin/claims/{rejected_id}/reject", headers=headers,
                                   json={"reason": "No conversion on the network's side"})
    body = await resp.json()
    assert resp.status == 200, body
    assert (body["data"]["status"], body["data"]["resolution"], body["data"]["amount"]) == (
        "rejected", "No conversion on the network's side", None)
    again = await money_client.post(f"/api/admin/claims/{rejected_id}/reject", headers=headers,
                                    json={"reason": "x"})
    assert again.status == 409
    assert (await money_client.post("/api/admin/claims/999999/approve", headers=headers)).status == 404
    assert (await money_client.get("/api/admin/claims", headers=auth_headers(money_settings, user))).status == 403

    listed = await (await money_client.get("/api/admin/claims?status=open", headers=headers)).json()
    assert [c["id"] for c in listed["data"]] == [open_id]
    everything = await (await money_client.get("/api/admin/claims", headers=headers)).json()
    assert [c["id"] for c in everything["data"]] == [open_id, rejected_id]
    assert everything["data"][1]["userId"] == user.id and everything["data"][1]["decidedBy"] == admin.id
    events = [e.data for e in session.query(OutboxEvent).filter_by(event="claim:status")]
    assert events == [{"claimId": rejected_id, "status": "rejected", "amount": None}]
    assert session.query(Notification).filter_by(type="claim_rejected").count() == 1
    assert session.query(AuditLog).filter_by(action="claim.reject").one().after["reason"] == (
        "No conversion on the network's side")
    assert session.query(Sale).count() == 0


async def test_approval_amounts(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, admin = make_user(session), make_user(session, role="admin")
    free = make_offer(session, external_id="free", network_payout=Decimal(0))
    _, claim_id = await _open_claim(money_client, session, money_settings, user, free)
    headers = auth_headers(money_settings, admin)
    url = f"/api/admin/claims/{claim_id}/approve"
    for bad in ({"amount": 0}, {"amount": -1}, {"amount": 1.234}, {"amount": "abc"}):
        assert (await money_client.post(url, headers=headers, json=bad)).status == 422
    resp = await money_client.post(url, headers=headers)  # the offer pays 0: an amount is needed
    assert resp.status == 422
    resp = await money_client.post(url, headers=headers, json={"amount": 2.5})
    assert resp.status == 202 and (await resp.json())["data"]["amount"] == 2.5
    assert _balances(session, user) == (0, Decimal("2.50"))


@pytest.mark.committed
async def test_twenty_concurrent_approvals_credit_once_through_a_real_worker(celery_worker, live_client, committed: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user, admin = make_user(session), make_user(session, role="admin")
        offer_id = make_offer(session, external_id="o1")
        click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    status, body = await _claim(live_client, settings, user, click_id)
    assert status == 201
    url = f"/api/admin/claims/{body['data']['id']}/approve"
    headers = auth_headers(settings, admin)
    responses = await asyncio.gather(*(live_client.post(url, headers=headers) for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [202] + [409] * 19

    def credited() -> bool:
        with committed.connect() as conn:
            return conn.execute(text("SELECT balance FROM users WHERE id = :id"),
                                {"id": user.id}).scalar_one() == Decimal("7.00")

    wait_for(credited)  # the worker ran sales.approve_sale
    with committed.connect() as conn:
        sales = conn.execute(text("SELECT status, click_id FROM sales")).all()
        entries = conn.execute(text("SELECT kind, amount FROM ledger_entries")).all()
        pending = conn.execute(text("SELECT pending_balance FROM users WHERE id = :id"),
                               {"id": user.id}).scalar_one()
    assert sales == [("approved", click_id)]
    assert entries == [("sale_credit", Decimal("7.00"))]
    assert pending == 0


def test_check_ledger_sees_a_claim_without_its_credit(session: Session) -> None:
    from common.services.ledger import check_ledger

    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    claim_id = session.execute(text(
        "INSERT INTO claims (click_id, user_id, offer_id, message, status, amount) "
        "VALUES (:c, :u, :o, 'm', 'approved', 7) RETURNING id"),
        {"c": click_id, "u": user.id, "o": offer_id}).scalar_one()
    assert check_ledger(session) == [f"claim {claim_id}: status approved amount 7.00, sale None None"]
    sale_id = session.execute(text(
        "INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount, commission_amount,"
        " status, hold_until, decided_at, click_id, claim_id) VALUES (:u, :o, 'claim', 'claim:1',"
        " 7, 7, 'rejected', now(), now(), :c, :cl) RETURNING id"),
        {"u": user.id, "o": offer_id, "c": click_id, "cl": claim_id}).scalar_one()
    # Its sale rejected: the claim says approved, and nothing was or will be credited.
    assert check_ledger(session) == [f"claim {claim_id}: status approved amount 7.00, sale {sale_id} 7.00"]
    session.execute(text("UPDATE sales SET status = 'pending', decided_at = NULL"))
    session.execute(text("UPDATE users SET pending_balance = 7 WHERE id = :u"), {"u": user.id})
    assert check_ledger(session) == []
