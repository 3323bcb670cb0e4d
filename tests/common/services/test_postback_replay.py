"""Replaying a logged callback (``POST /api/admin/postbacks/{id}/replay``): checked again with
today's configuration, applied through the live credit rule, once; audited; logged as a replay."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.config import NetworkConfig, Settings
from common.models import AuditLog, LedgerEntry, PostbackLog, Sale, User
from common.services.postbacks import log_postback
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import money_client, money_settings  # noqa: F401
from tests.fixtures.money_factories import generic_params, make_offer


@pytest.fixture
def admin(session: Session) -> User:
    return make_user(session, role="admin")


@pytest.fixture
def headers(settings: Settings, admin: User) -> dict[str, str]:
    return {**auth_headers(settings, admin), "X-Trace-ID": "trace-replay-0001"}


@pytest.fixture
async def misconfigured(aiohttp_client, money_settings: Settings, bound_db):  # type: ignore[no-untyped-def]
    """The same app before the fix: ``testnet``'s secret was mistyped."""
    from web.app import create_app

    networks = {**money_settings.networks,
                "testnet": NetworkConfig(name="testnet", secret="test-secret-typo")}
    return await aiohttp_client(create_app(money_settings.model_copy(update={"networks": networks}),
                                           db=bound_db))


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def _money(session: Session, user: User) -> tuple[Decimal, Decimal, int]:
    session.expire_all()
    fresh = session.get(User, user.id)
    assert fresh is not None
    return fresh.balance, fresh.pending_balance, _count(session, LedgerEntry)


async def _replay(client: TestClient, headers: dict[str, str], log_id: int, status: int = 200) -> dict[str, Any]:
    resp = await client.post(f"/api/admin/postbacks/{log_id}/replay", headers=headers)
    body = await resp.json()
    assert resp.status == status, body
    return body


def _last_log(session: Session) -> PostbackLog:
    row = session.scalars(select(PostbackLog).order_by(PostbackLog.id.desc())).first()
    assert row is not None
    return row


async def test_replay_after_a_secret_fix_credits_once(money_client, misconfigured, session: Session, admin: User, headers) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal("0.5"))
    session.commit()
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", amount="4.00")
    assert (await misconfigured.get("/api/postbacks/testnet", params=params)).status == 403
    original = _last_log(session)
    assert (original.verdict, original.outcome) == ("bad_signature", None)
    assert _money(session, user) == (0, 0, 0)

    data = (await _replay(money_client, headers, original.id))["data"]
    sale = session.scalars(select(Sale)).one()
    assert data == {"id": data["id"], "replayOf": original.id, "network": "testnet",
                    "verdict": "accepted", "outcome": "credited", "saleId": sale.id,
                    "saleStatus": "pending", "detail": None}
    assert _money(session, user) == (0, Decimal("2.00"), 0)

    again = (await _replay(money_client, headers, original.id))["data"]
    assert (again["outcome"], again["saleId"]) == ("duplicate", sale.id)
    assert _money(session, user) == (0, Decimal("2.00"), 0) and _count(session, Sale) == 1

    replays = session.scalars(select(PostbackLog).where(PostbackLog.replay_of == original.id)
                              .order_by(PostbackLog.id)).all()
    assert [(r.id, r.verdict, r.outcome, r.sale_id) for r in replays] == [
        (data["id"], "accepted", "credited", sale.id), (again["id"], "accepted", "duplicate", sale.id)]
    assert all(r.params == original.params and r.txn_id == "t1" and r.user_id == user.id
               and r.trace_id == "trace-replay-0001" for r in replays)
    audits = session.scalars(select(AuditLog).where(AuditLog.action == "postback.replay")
                             .order_by(AuditLog.id)).all()
    assert [(a.actor_id, a.target_type, a.target_id, a.ip, a.trace_id) for a in audits] == [
        (admin.id, "postback", str(original.id), "127.0.0.1", "trace-replay-0001")] * 2
    assert audits[0].before == {"verdict": "bad_signature", "outcome": None, "saleId": None}
    assert audits[0].after == {"replayId": data["id"], "verdict": "accepted",
                               "outcome": "credited", "saleId": sale.id}
    assert audits[1].after["outcome"] == "duplicate"


async def test_replaying_an_applied_callback_changes_nothing(money_client, session: Session, headers) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    session.commit()
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", amount="3.00")
    sale_id = (await (await money_client.get("/api/postbacks/testnet", params=params)).json())["data"]["saleId"]
    original = _last_log(session)
    before = _money(session, user)

    data = (await _replay(money_client, headers, original.id))["data"]
    assert (data["verdict"], data["outcome"], data["saleId"], data["saleStatus"]) == (
        "accepted", "duplicate", sale_id, "pending")
    assert _money(session, user) == before == (0, Decimal("3.00"), 0)
    assert _count(session, Sale) == 1


async def test_replay_applies_a_reversal_through_the_same_rule(money_client, misconfigured, session: Session, headers) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    session.commit()
    credit = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", amount="3.00")
    assert (await money_client.get("/api/postbacks/testnet", params=credit)).status == 200
    reversal = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", status="2")
    assert (await misconfigured.get("/api/postbacks/testnet", params=reversal)).status == 403
    data = (await _replay(money_client, headers, _last_log(session).id))["data"]
    assert (data["outcome"], data["saleStatus"]) == ("rejected", "rejected")
    assert _money(session, user) == (0, 0, 0)


async def test_a_replay_that_still_fails_is_logged_and_changes_nothing(money_client, session: Session, admin: User, headers) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    forged = {**generic_params(user_id=user.id, offer_id="o1", txn_id="t1"), "amount": "999.00"}
    assert (await money_client.get("/api/postbacks/testnet", params=forged)).status == 403
    original = _last_log(session)

    data = (await _replay(money_client, headers, original.id))["data"]
    assert (data["verdict"], data["outcome"], data["saleId"]) == ("bad_signature", None, None)
    assert data["detail"] == "Bad signature"
    assert _count(session, Sale) == 0 and _money(session, user) == (0, 0, 0)
    assert _last_log(session).replay_of == original.id
    assert session.scalars(select(AuditLog.after).where(AuditLog.action == "postback.replay")).one()[
        "verdict"] == "bad_signature"
    assert str(forged["sig"]) not in await (await money_client.get(
        "/api/admin/postbacks", headers=headers)).text()


async def test_source_ip_and_unknown_user_outcomes(money_client, session: Session, headers) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="locked", external_id="o1")
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    locked = generic_params("locked-secret", user_id=user.id, offer_id="o1", txn_id="t1")
    log_postback(session, network="locked", method="GET", params=locked, ip="127.0.0.1",
                 verdict="ip_refused")
    ghost = generic_params(user_id=user.id + 999, offer_id="o1", txn_id="t2")
    log_postback(session, network="testnet", method="GET", params=ghost, ip="127.0.0.1",
                 verdict="bad_signature")
    session.commit()
    ids = session.scalars(select(PostbackLog.id).order_by(PostbackLog.id)).all()

    refused = (await _replay(money_client, headers, ids[0]))["data"]
    assert (refused["verdict"], refused["outcome"]) == ("ip_refused", None)
    unknown = (await _replay(money_client, headers, ids[1]))["data"]
    assert (unknown["verdict"], unknown["outcome"], unknown["saleId"]) == ("accepted", "unknown_user", None)
    assert _count(session, Sale) == 0


async def test_refusals(money_client, session: Session, settings: Settings, headers) -> None:  # type: ignore[no-untyped-def]
    member = make_user(session)
    log_postback(session, network="gone", method="GET", params={"txn_id": "t1"}, ip="127.0.0.1",
                 verdict="bad_signature")
    session.commit()
    gone = _last_log(session).id
    await _replay(money_client, headers, gone + 1000, status=404)
    resp = await money_client.post("/api/admin/postbacks/007/replay", headers=headers)
    assert resp.status == 404
    body = await _replay(money_client, headers, gone, status=409)  # no longer configured
    assert body["success"] is False and "gone" in body["message"]
    await _replay(money_client, auth_headers(settings, member), gone, status=403)
    assert (await money_client.post(f"/api/admin/postbacks/{gone}/replay")).status == 401
    assert _count(session, PostbackLog) == 1 and _count(session, AuditLog) == 0
