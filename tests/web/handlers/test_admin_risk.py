"""Risk through the API (API.md section 13, docs/risk.md): a flagged member's withdrawal waits for
an admin, who approves (the real worker pays) or rejects (the hold comes back); frozen
withdrawals are refused with nothing held; the review queue, the user detail, clearing, the
dashboard; bad input is a 4xx that stores nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import AuditLog, LedgerEntry, OutboxEvent, Payment, User
from common.services.payments import start_payout
from common.services.risk_signals import record_signal
from tests.fixtures.admin import admin, admin_headers, api, member, member_headers  # noqa: F401
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import live_client  # noqa: F401
from tests.fixtures.money_factories import fund, make_funded_user
from tests.fixtures.processes import wait_for

BODY = {"amount": 10, "method": "paypal", "destination": "me@example.com"}


def _flag(session: Session, user: User, fact: str = "1") -> None:
    """Signals worth RISK_REVIEW_SCORE (50 by default): one listed address."""
    record_signal(session, user_id=user.id, kind="listed_ip",
                  detail={"ip": "203.0.113.5", "network": "203.0.113.0/24", "seenAt": "login"},
                  key=f"test-listed:{user.id}:{fact}")


async def _withdraw(client, settings: Settings, user: User, key: str = "k1"):  # type: ignore[no-untyped-def]
    headers = {**auth_headers(settings, user), "Idempotency-Key": key}
    return await client.post("/api/payments", json=BODY, headers=headers)


def _balance(session: Session, user: User) -> Decimal:
    session.expire_all()
    return session.get(User, user.id).balance  # type: ignore[union-attr]


@pytest.fixture
async def risky_client(aiohttp_client, settings: Settings, committed: Engine):  # type: ignore[no-untyped-def]
    """A live app whose RISK_BLOCKED_CIDRS holds the test client's own address."""
    from web.app import create_app

    return await aiohttp_client(create_app(settings.model_copy(
        update={"risk_blocked_cidrs": "127.0.0.0/8, ::1/128"})))


@pytest.mark.committed
async def test_a_withdrawal_from_a_listed_address_waits_and_the_worker_pays_once_approved(  # type: ignore[no-untyped-def]
        celery_worker, risky_client, committed: Engine, settings: Settings) -> None:
    with Session(committed, expire_on_commit=False) as session, session.begin():
        boss = make_user(session, role="admin")
        user = make_funded_user(session, "50")
    resp = await _withdraw(risky_client, settings, user)
    data = (await resp.json())["data"]
    assert resp.status == 202 and data["needsReview"] is True and data["status"] == "pending"
    with Session(committed) as session:
        assert session.execute(select(User.risk_score).where(User.id == user.id)).scalar_one() == 50
        flagged = session.scalars(select(OutboxEvent).where(OutboxEvent.event == "risk:flagged")).all()
        assert [(e.target_id, e.data["userId"]) for e in flagged] == [(boss.id, user.id)]
        stats = (await (await risky_client.get("/api/admin/analytics/dashboard",
                                               headers=auth_headers(settings, boss))).json())
        assert stats["data"]["stats"]["risky_withdrawals"] == 1
    with Session(committed) as session, session.begin():  # the payout worker's first step
        assert start_payout(session, payment_id=data["id"], lease_seconds=60) is None
    approved = await risky_client.post(f"/api/admin/payments/{data['id']}/approve",
                                       headers=auth_headers(settings, boss))
    assert approved.status == 202, await approved.text()

    def paid() -> bool:
        with committed.connect() as conn:
            return conn.execute(text("SELECT status FROM payments")).scalar_one() == "paid"

    wait_for(paid)
    with Session(committed) as session:
        assert session.execute(select(User.balance).where(User.id == user.id)).scalar_one() == 40


async def test_a_flagged_withdrawal_rejected_gives_the_hold_back(api, session: Session, settings: Settings, admin_headers) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "30")
    _flag(session, user)
    session.commit()
    resp = await _withdraw(api, settings, user)
    payment = (await resp.json())["data"]
    assert resp.status == 202 and payment["needsReview"] is True
    assert _balance(session, user) == Decimal(20)
    rejected = await api.post(f"/api/admin/payments/{payment['id']}/reject",
                              json={"reason": "Looks like a bot"}, headers=admin_headers)
    body = (await rejected.json())["data"]
    assert rejected.status == 202 and body["status"] == "failed" and body["needsReview"] is True
    assert _balance(session, user) == Decimal(30)
    # A member under the threshold is paid without an admin, as before.
    other = make_funded_user(session, "30")
    session.commit()
    plain = (await (await _withdraw(api, settings, other)).json())["data"]
    assert plain["needsReview"] is False


async def test_frozen_withdrawals_are_refused_with_nothing_held(api, session: Session, settings: Settings, admin_headers, member, member_headers) -> None:  # type: ignore[no-untyped-def]
    fund(session, member.id, "40")
    session.commit()
    url = f"/api/admin/users/{member.id}/payouts"
    frozen = await api.put(url, json={"frozen": True, "reason": "chargebacks"}, headers=admin_headers)
    assert frozen.status == 200
    assert (await frozen.json())["data"] == {"userId": member.id, "payoutsFrozen": True,
                                             "reason": "chargebacks"}
    me = (await (await api.get("/api/auth/me", headers=member_headers)).json())["data"]
    assert me["payoutsFrozen"] is True
    refused = await _withdraw(api, settings, member)
    body = await refused.json()
    assert refused.status == 403 and "frozen" in body["message"]
    assert session.scalar(select(func.count()).select_from(Payment)) == 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry)
                          .where(LedgerEntry.kind == "payout_hold")) == 0
    assert _balance(session, member) == Decimal(40)
    await api.put(url, json={"frozen": False, "reason": "settled"}, headers=admin_headers)
    assert (await _withdraw(api, settings, member, key="k2")).status == 202
    audits = session.scalars(select(AuditLog.after).where(AuditLog.action == "user.payouts_frozen")
                             .order_by(AuditLog.id)).all()
    assert [(a["payoutsFrozen"], a["reason"]) for a in audits] == [
        (True, "chargebacks"), (False, "settled")]


async def test_the_review_queue_detail_and_clearing(api, session: Session, admin_headers) -> None:  # type: ignore[no-untyped-def]
    low, high = make_user(session, name="Low"), make_user(session, name="High")
    record_signal(session, user_id=low.id, kind="fast_conversion", detail={"saleId": 1},
                  key="test-fast:1")
    _flag(session, high)
    record_signal(session, user_id=high.id, kind="fast_conversion", detail={"saleId": 2},
                  key="test-fast:2")
    session.commit()
    queue = await (await api.get("/api/admin/risk?limit=1", headers=admin_headers)).json()
    assert queue["pagination"] == {"page": 1, "limit": 1, "total": 2, "totalPages": 2}
    first = queue["data"][0]
    assert (first["userId"], first["name"], first["score"]) == (high.id, "High", 60)
    assert [s["kind"] for s in first["signals"]] == ["fast_conversion", "listed_ip"]
    assert set(first["signals"][0]) == {"id", "kind", "detail", "weight", "counts", "createdAt"}
    only_high = await (await api.get("/api/admin/risk?minScore=50.5", headers=admin_headers)).json()
    assert [u["userId"] for u in only_high["data"]] == [high.id]

    detail = (await (await api.get(f"/api/admin/users/{high.id}", headers=admin_headers)).json())["data"]
    assert detail["risk"]["score"] == 60 and len(detail["risk"]["signals"]) == 2
    assert detail["payoutsFrozen"] is False

    cleared = await api.post(f"/api/admin/users/{high.id}/risk/clear",
                             json={"reason": "verified by phone"}, headers=admin_headers)
    body = (await cleared.json())["data"]
    assert cleared.status == 200 and body["score"] == 0
    assert [s["counts"] for s in body["signals"]] == [False, False]
    after = await (await api.get("/api/admin/risk", headers=admin_headers)).json()
    assert [u["userId"] for u in after["data"]] == [low.id]
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "user.risk_clear")).one()
    assert audit.before == {"riskScore": "60.00"} and audit.after["reason"] == "verified by phone"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/admin/risk?minScore=lots", None),
    ("GET", "/api/admin/risk?minScore=-1", None),
    ("GET", "/api/admin/risk?minScore=1e400", None),
    ("POST", "/api/admin/users/{id}/risk/clear", {}),
    ("POST", "/api/admin/users/{id}/risk/clear", {"reason": ""}),
    ("POST", "/api/admin/users/{id}/risk/clear", {"reason": "x" * 501}),
    ("PUT", "/api/admin/users/{id}/payouts", {"reason": "no state"}),
    ("PUT", "/api/admin/users/{id}/payouts", {"frozen": "perhaps", "reason": "r"}),
    ("PUT", "/api/admin/users/{id}/payouts", {"frozen": True}),
    ("PUT", "/api/admin/users/{id}/payouts", {"frozen": True, "reason": "x" * 501}),
])
async def test_bad_input_is_a_4xx_and_stores_nothing(api, session: Session, admin_headers, member, method: str, path: str, body: dict[str, Any] | None) -> None:  # type: ignore[no-untyped-def]
    _flag(session, member)
    session.commit()
    resp = await api.request(method, path.format(id=member.id), json=body, headers=admin_headers)
    assert resp.status in (400, 422), await resp.text()
    assert (await resp.json())["success"] is False
    session.expire_all()
    row = session.get(User, member.id)
    assert row is not None and row.risk_score == 50 and row.payouts_frozen is False
    assert session.scalar(select(func.count()).select_from(AuditLog)) == 0


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/admin/users/999999/risk/clear", {"reason": "r"}),
    ("PUT", "/api/admin/users/999999/payouts", {"frozen": True, "reason": "r"}),
])
async def test_unknown_user_is_404(api, session: Session, admin_headers, method: str, path: str, body: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    resp = await api.request(method, path, json=body, headers=admin_headers)
    assert resp.status == 404
    assert session.scalar(select(func.count()).select_from(AuditLog)) == 0


async def test_members_cannot_see_or_change_risk(api, member, member_headers) -> None:  # type: ignore[no-untyped-def]
    assert (await api.get("/api/admin/risk", headers=member_headers)).status == 403
    resp = await api.put(f"/api/admin/users/{member.id}/payouts",
                         json={"frozen": False, "reason": "me"}, headers=member_headers)
    assert resp.status == 403
