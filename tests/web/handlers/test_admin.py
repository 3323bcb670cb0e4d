"""Admin routes as an admin: they work, match docs/api.md "Admin", and every write is audited with
who, what, target, before, after, IP and trace id."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.models import AuditLog, LedgerEntry, Offer, OutboxEvent, Sale, User
from common.services.payments import request_withdrawal
from common.services.sales import credit_sale
from tests.fixtures.admin import admin, admin_headers, api, member  # noqa: F401
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import fund, make_funded_user, make_offer

TRACE = "trace-admin-0001"


def _audit(session: Session, action: str) -> AuditLog:
    row = session.scalars(select(AuditLog).where(AuditLog.action == action)
                          .order_by(AuditLog.id.desc())).first()
    assert row is not None, action
    assert row.trace_id == TRACE and row.ip == "127.0.0.1"
    return row


async def _ok(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    assert body["success"] is True
    return body


async def test_users_list_filters_and_detail(api: TestClient, session: Session, admin: User,
                                             admin_headers: dict[str, str]) -> None:
    rich = make_funded_user(session, "12.50", name="Zed Findme")
    make_user(session, status="banned")
    body = await _ok(await api.get("/api/admin/users?search=findme", headers=admin_headers))
    assert [u["id"] for u in body["data"]] == [rich.id]
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1}
    banned = await _ok(await api.get("/api/admin/users?status=banned", headers=admin_headers))
    assert {u["status"] for u in banned["data"]} == {"banned"}
    admins = await _ok(await api.get("/api/admin/users?role=admin", headers=admin_headers))
    assert [u["id"] for u in admins["data"]] == [admin.id]
    detail = (await _ok(await api.get(f"/api/admin/users/{rich.id}", headers=admin_headers)))["data"]
    assert detail["balance"] == 12.5 and detail["ledger"]["total"] == 12.5
    assert detail["ledger"]["byKind"] == {"adjustment": {"entries": 1, "total": 12.5}}
    assert (await api.get("/api/admin/users/999999", headers=admin_headers)).status == 404


async def test_status_change_uses_the_accounts_service(api: TestClient, session: Session,
                                                       member: User, admin: User,
                                                       admin_headers: dict[str, str]) -> None:
    resp = await api.put(f"/api/admin/users/{member.id}/status",
                         json={"status": "suspended", "reason": "fraud"}, headers=admin_headers)
    data = (await _ok(resp))["data"]
    assert data["status"] == "suspended"
    row = _audit(session, "user.status")
    assert row.actor_id == admin.id and row.target_id == str(member.id)
    assert row.before == {"status": "active"} and row.after == {"status": "suspended", "reason": "fraud"}
    event = session.scalars(select(OutboxEvent).where(OutboxEvent.event == "account:status")).one()
    assert event.target_id == member.id
    own = await api.put(f"/api/admin/users/{admin.id}/status", json={"status": "banned"},
                        headers=admin_headers)
    assert own.status == 403
    bad = await api.put(f"/api/admin/users/{member.id}/status", json={"status": "gone"},
                        headers=admin_headers)
    assert bad.status in (400, 422)


async def test_adjust_balance_posts_once_per_key(api: TestClient, session: Session, member: User,
                                                admin_headers: dict[str, str]) -> None:
    url = f"/api/admin/users/{member.id}/adjust-balance"
    assert (await api.post(url, json={"amount": 5, "reason": "x"}, headers=admin_headers)).status == 400
    headers = {**admin_headers, "Idempotency-Key": "adj-1"}
    first = (await _ok(await api.post(url, json={"amount": 7.25, "reason": "goodwill"}, headers=headers)))
    assert first["data"]["balance"] == 7.25 and first["data"]["amount"] == 7.25
    again = await api.post(url, json={"amount": 7.25, "reason": "goodwill"}, headers=headers)
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    other = await api.post(url, json={"amount": 1, "reason": "goodwill"}, headers=headers)
    assert other.status == 409
    debit = await api.post(url, json={"amount": -100, "reason": "claw back"},
                           headers={**admin_headers, "Idempotency-Key": "adj-2"})
    assert debit.status == 422
    entries = session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == member.id)).all()
    assert [(e.kind, e.amount) for e in entries] == [("adjustment", Decimal("7.25"))]
    session.refresh(member)
    assert member.balance == Decimal("7.25")
    row = _audit(session, "user.adjust_balance")
    assert row.before == {"balance": "0.00"} and row.after["balance"] == "7.25"


async def test_adjustment_after_its_key_expired_posts_again(api: TestClient, session: Session,
                                                           member: User,
                                                           admin_headers: dict[str, str]) -> None:
    """An expired key is taken over by the next request, which must make its own adjustment
    (the ledger key is the executed request's, not the client's key text)."""
    url = f"/api/admin/users/{member.id}/adjust-balance"
    headers = {**admin_headers, "Idempotency-Key": "monthly-bonus"}
    first = (await _ok(await api.post(url, json={"amount": 5, "reason": "bonus"}, headers=headers)))["data"]
    session.execute(text("UPDATE idempotency_keys SET expires_at = now() - interval '1 s'"))
    second = (await _ok(await api.post(url, json={"amount": 5, "reason": "bonus"}, headers=headers)))["data"]
    assert second["entryId"] is not None and second["entryId"] != first["entryId"]
    assert second["balance"] == 10
    session.refresh(member)
    assert member.balance == Decimal("10.00")


async def test_idempotency_key_length_is_bounded(api: TestClient, session: Session, member: User,
                                                 admin_headers: dict[str, str]) -> None:
    url = f"/api/admin/users/{member.id}/adjust-balance"
    longest = {**admin_headers, "Idempotency-Key": "k" * 255}
    data = (await _ok(await api.post(url, json={"amount": 2, "reason": "r"}, headers=longest)))["data"]
    assert data["entryId"] is not None and data["balance"] == 2
    for bad in ("k" * 256, "caf\u00e9"):
        resp = await api.post(url, json={"amount": 2, "reason": "r"},
                              headers={**admin_headers, "Idempotency-Key": bad})
        body = await resp.json()
        assert resp.status == 400 and body["success"] is False, body
        assert "Idempotency-Key" in body["message"] and "255" in body["message"]
    session.refresh(member)
    assert member.balance == Decimal("2.00")


def test_an_adjustment_that_posts_nothing_is_an_error(session: Session) -> None:
    """Reporting 200 with no entry and an unchanged balance is never right."""
    from common.errors import Conflict
    from common.services.admin_users import adjust_balance

    admin, member = make_user(session, role="admin"), make_user(session)
    args = dict(actor_id=admin.id, user_id=member.id, amount=Decimal(3), reason="r", key="k",  # noqa: C408
                request_id=1, ip=None, trace_id=None)
    assert adjust_balance(session, **args)["entryId"] is not None  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        adjust_balance(session, **args)  # type: ignore[arg-type]


def _offer_body(**extra: Any) -> dict[str, Any]:
    return {"title": "Play a game", "category": "games", "network": "testnet",
            "externalId": "adm-1", "networkPayout": 10, "userShare": 0.5, **extra}


async def test_offer_lifecycle(api: TestClient, session: Session, admin_headers: dict[str, str]) -> None:
    created = (await _ok(await api.post("/api/admin/offers", json=_offer_body(),
                                        headers=admin_headers), 201))["data"]
    oid = created["id"]
    assert created["status"] == "pending" and created["payout"] == 5
    assert _audit(session, "offer.create").after["status"] == "pending"
    dup = await api.post("/api/admin/offers", json=_offer_body(), headers=admin_headers)
    assert dup.status == 409
    updated = (await _ok(await api.put(f"/api/admin/offers/{oid}", json={"networkPayout": 20},
                                       headers=admin_headers)))["data"]
    assert updated["payout"] == 10
    row = _audit(session, "offer.update")
    assert row.before["payout"] == "5.00" and row.after["payout"] == "10.00"
    rejected = (await _ok(await api.post(f"/api/admin/offers/{oid}/reject",
                                         json={"reason": "broken link"}, headers=admin_headers)))
    assert rejected["data"]["status"] == "rejected"
    assert rejected["data"]["rejectionReason"] == "broken link"
    assert _audit(session, "offer.reject").after["rejection_reason"] == "broken link"
    approved = (await _ok(await api.post(f"/api/admin/offers/{oid}/approve",
                                         headers=admin_headers)))["data"]
    assert approved["status"] == "active"
    event = session.scalars(select(OutboxEvent).where(OutboxEvent.event == "offer:new")).one()
    assert event.target == "all" and event.data["category"] == "games"
    assert event.data["offer"]["id"] == oid and event.data["offer"]["payout"] == 10
    assert set(event.data["offer"]) == {"id", "title", "description", "category", "network",
                                        "payout", "status", "createdAt"}
    listed = await _ok(await api.get("/api/admin/offers?status=active", headers=admin_headers))
    assert [o["id"] for o in listed["data"]] == [oid]
    one = await _ok(await api.get(f"/api/admin/offers/{oid}", headers=admin_headers))
    assert one["data"]["title"] == "Play a game"
    deleted = await _ok(await api.delete(f"/api/admin/offers/{oid}", headers=admin_headers))
    assert deleted["data"]["status"] == "paused"
    assert session.get(Offer, oid) is not None
    assert _audit(session, "offer.delete").before["status"] == "active"
    assert (await api.get("/api/admin/offers/424242", headers=admin_headers)).status == 404


def _pending_sale(session: Session, user: User) -> int:
    make_offer(session, external_id="off-sale")
    return credit_sale(session, network="testnet", external_id=f"t-{user.id}", user_id=user.id,
                       offer_external_id="off-sale", amount=Decimal(10), hold_seconds=3600).sale_id


async def test_sale_decisions_are_queued(api: TestClient, session: Session, member: User,
                                         admin_headers: dict[str, str]) -> None:
    sale_id = _pending_sale(session, member)
    listed = await _ok(await api.get("/api/admin/sales?status=pending", headers=admin_headers))
    assert [s["id"] for s in listed["data"]] == [sale_id]
    assert listed["data"][0]["commissionAmount"] == 7
    resp = await api.post(f"/api/admin/sales/{sale_id}/approve", headers=admin_headers)
    assert (await _ok(resp, 202))["data"] == {"saleId": sale_id, "status": "pending",
                                              "queued": "approve"}
    assert _audit(session, "sale.approve").target_id == str(sale_id)
    rej = await api.post(f"/api/admin/sales/{sale_id}/reject", headers=admin_headers)
    assert rej.status == 202
    session.execute(Sale.__table__.update().values(status="rejected"))
    assert (await api.post(f"/api/admin/sales/{sale_id}/approve", headers=admin_headers)).status == 409
    assert (await api.post("/api/admin/sales/99999/approve", headers=admin_headers)).status == 404


async def test_payment_decisions(api: TestClient, session: Session, member: User,
                                 admin_headers: dict[str, str]) -> None:
    fund(session, member.id, "500")
    big = [request_withdrawal(session, user_id=member.id, amount=Decimal(200), method="paypal",
                              destination="a@b.example", minimum=Decimal(1),
                              auto_pay_limit=Decimal(100))["id"] for _ in range(2)]
    listed = await _ok(await api.get("/api/admin/payments?status=pending", headers=admin_headers))
    assert {p["id"] for p in listed["data"]} == set(big)
    assert all(p["needsApproval"] for p in listed["data"])
    ok = await _ok(await api.post(f"/api/admin/payments/{big[0]}/approve", headers=admin_headers), 202)
    assert ok["data"]["approvedAt"] is not None
    assert _audit(session, "payment.approve").target_id == str(big[0])
    again = await api.post(f"/api/admin/payments/{big[0]}/approve", headers=admin_headers)
    assert again.status == 409
    rej = await _ok(await api.post(f"/api/admin/payments/{big[1]}/reject", json={"reason": "kyc"},
                                   headers=admin_headers), 202)
    assert rej["data"]["status"] == "failed" and rej["data"]["failureReason"] == "kyc"
    assert _audit(session, "payment.reject").after["reason"] == "kyc"
    session.refresh(member)
    assert member.balance == Decimal(300)


async def test_audit_log_is_paginated_and_filtered(api: TestClient, session: Session, admin: User,
                                                   member: User, admin_headers: dict[str, str]) -> None:
    for n in range(3):
        await api.post(f"/api/admin/users/{member.id}/adjust-balance", json={"amount": 1, "reason": "r"},
                       headers={**admin_headers, "Idempotency-Key": f"k{n}"})
    await api.put(f"/api/admin/users/{member.id}/status", json={"status": "banned"}, headers=admin_headers)
    body = await _ok(await api.get("/api/admin/audit-log?limit=2", headers=admin_headers))
    assert body["pagination"]["total"] == 4 and len(body["data"]) == 2
    first = body["data"][0]
    assert first["action"] == "user.status" and first["actorId"] == admin.id
    assert first["ip"] == "127.0.0.1" and first["traceId"] == TRACE
    assert set(first) == {"id", "actorId", "action", "targetType", "targetId", "before", "after",
                          "ip", "traceId", "createdAt"}
    only = await _ok(await api.get("/api/admin/audit-log?action=user.adjust_balance",
                                   headers=admin_headers))
    assert only["pagination"]["total"] == 3
    by_target = await _ok(await api.get(f"/api/admin/audit-log?targetType=user&targetId={member.id}"
                                        f"&actorId={admin.id}", headers=admin_headers))
    assert by_target["pagination"]["total"] == 4


async def test_a_fixed_payout_needs_its_amount(api: TestClient, admin_headers: dict[str, str]) -> None:
    resp = await api.post("/api/admin/offers", json=_offer_body(payoutType="fixed"), headers=admin_headers)
    assert resp.status == 422
    oid = (await (await api.post("/api/admin/offers", json=_offer_body(), headers=admin_headers)).json())["data"]["id"]
    resp = await api.put(f"/api/admin/offers/{oid}", json={"payoutType": "fixed"}, headers=admin_headers)
    assert resp.status == 422
    resp = await api.put(f"/api/admin/offers/{oid}", json={"payoutType": "fixed", "fixedPayout": 2},
                         headers=admin_headers)
    assert (await resp.json())["data"]["payout"] == 2
