"""Postbacks: verified before anything is stored, one sale per transaction id, reversals."""

from __future__ import annotations

import asyncio
import hashlib
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.models import AuditLog, PostbackLog, Sale, User
from common.services.sales import approve_sale
from tests.fixtures.factories import make_user
from tests.fixtures.money import (  # noqa: F401
    live_money_client,
    money_client,
    money_settings,
)
from tests.fixtures.money_factories import generic_params, make_offer


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def _state(session: Session, user: User) -> tuple[Decimal, Decimal]:
    session.expire_all()
    fresh = session.get(User, user.id)
    assert fresh is not None
    return fresh.balance, fresh.pending_balance


async def test_credit_makes_one_pending_sale(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal("0.5"))
    session.commit()
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", amount="3.33")

    resp = await money_client.get("/api/postbacks/testnet", params=params)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["status"] == "pending"
    sale = session.get(Sale, body["data"]["saleId"])
    assert sale is not None and sale.commission_amount == Decimal("1.66")
    assert sale.sale_amount == Decimal("3.33")
    assert _state(session, user) == (Decimal(0), Decimal("1.66"))

    again = await money_client.post("/api/postbacks/testnet", data=params)
    assert again.status == 200 and (await again.json())["data"]["saleId"] == sale.id
    assert _state(session, user) == (Decimal(0), Decimal("1.66"))
    outcomes = [(r.verdict, r.outcome) for r in session.query(PostbackLog).order_by(PostbackLog.id)]
    assert outcomes == [("accepted", "credited"), ("accepted", "duplicate")]


@pytest.mark.parametrize(
    ("network", "tamper", "verdict"),
    [
        ("testnet", {"sig": "0" * 64}, "bad_signature"),
        ("testnet", {"amount": "99.00"}, "bad_signature"),
        ("locked", {}, "ip_refused"),
    ],
)
async def test_refused_callbacks_store_only_the_log(money_client, session: Session, network, tamper, verdict) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network=network, external_id="o1")
    session.commit()
    secret = {"locked": "locked-secret"}.get(network, "test-secret")
    params = {**generic_params(secret, user_id=user.id, offer_id="o1", txn_id="t1"), **tamper}
    resp = await money_client.get(f"/api/postbacks/{network}", params=params)
    assert resp.status == 403
    assert session.query(Sale).count() == 0
    assert _state(session, user) == (0, 0)
    logged = session.query(PostbackLog).one()
    assert (logged.verdict, logged.network, logged.params["txn_id"]) == (verdict, network, "t1")


async def test_unknown_user_or_offer_is_refused_and_logged(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    bad_user = generic_params(user_id=user.id + 1000, offer_id="o1", txn_id="t1")
    assert (await money_client.get("/api/postbacks/testnet", params=bad_user)).status == 422
    bad_offer = generic_params(user_id=user.id, offer_id="nope", txn_id="t2")
    assert (await money_client.get("/api/postbacks/testnet", params=bad_offer)).status == 422
    assert session.query(Sale).count() == 0
    assert [r.outcome for r in session.query(PostbackLog).order_by(PostbackLog.id)] == [
        "unknown_user", "unknown_offer"]


async def test_reversal_rejects_pending_and_debits_approved(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    session.commit()
    for txn in ("t1", "t2"):
        p = generic_params(user_id=user.id, offer_id="o1", txn_id=txn, amount="4.00")
        assert (await money_client.get("/api/postbacks/testnet", params=p)).status == 200
    t2 = session.query(Sale).filter_by(external_id="t2").one()
    assert approve_sale(session, sale_id=t2.id)
    session.commit()
    assert _state(session, user) == (Decimal("4.00"), Decimal("4.00"))

    for txn, expected in (("t1", "rejected"), ("t2", "reversed")):
        p = generic_params(user_id=user.id, offer_id="o1", txn_id=txn, status="2")
        resp = await money_client.get("/api/postbacks/testnet", params=p)
        assert (await resp.json())["data"]["status"] == expected
    assert _state(session, user) == (0, 0)


async def test_reversal_of_spent_balance_leaves_a_debt(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    session.commit()
    p = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", amount="4.00")
    sale_id = (await (await money_client.get("/api/postbacks/testnet", params=p)).json())["data"]["saleId"]
    approve_sale(session, sale_id=sale_id)
    session.execute(text(
        "WITH e AS (INSERT INTO ledger_entries (user_id, amount, kind, idempotency_key) "
        "VALUES (:u, -3, 'adjustment', 'spent') RETURNING user_id) "
        "UPDATE users SET balance = balance - 3 WHERE id = :u"), {"u": user.id})
    session.commit()
    p = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", status="chargeback")
    assert (await money_client.get("/api/postbacks/testnet", params=p)).status == 200
    assert _state(session, user) == (Decimal("-3.00"), 0)
    debt = session.query(AuditLog).filter_by(action="sale.reversal_debt").one()
    assert debt.after == {"userId": user.id, "commission": "4.00", "balanceAfter": "-3.00",
                          "paymentsFailed": []}


async def test_real_network_schemes(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    for net in ("cpx", "sr", "tapjoy"):
        make_offer(session, network=net, external_id="*", user_share=Decimal("0.5"))
    session.commit()
    uid = str(user.id)

    cpx = {"user_id": uid, "trans_id": "c1", "amount_usd": "2.00", "status": "1",
           "secure_hash": _md5("c1-cpx-secret")}
    resp = await money_client.get("/api/postbacks/cpx", params=cpx)
    assert resp.status == 200
    bad = {**cpx, "secure_hash": _md5("c1-wrong")}
    assert (await money_client.get("/api/postbacks/cpx", params=bad)).status == 403

    sr = {"id": "s1", "new": "4", "total": "4", "uid": uid, "oid": "*",
          "sig": _md5(f"s1:4:{uid}:sr-secret")}
    resp = await money_client.get("/api/postbacks/sr", params=sr)
    assert (resp.status, await resp.text()) == (200, "1")
    resp = await money_client.get("/api/postbacks/sr", params={**sr, "sig": "x"})
    assert (resp.status, await resp.text()) == (403, "0")
    reverse = {"id": "s1", "new": "-4", "total": "0", "uid": uid,
               "sig": _md5(f"s1:-4:{uid}:sr-secret")}
    assert await (await money_client.get("/api/postbacks/sr", params=reverse)).text() == "1"

    tj = {"id": "j1", "snuid": uid, "currency": "6",
          "verifier": _md5(f"j1:{uid}:6:tj-secret")}
    assert (await money_client.get("/api/postbacks/tapjoy", params=tj)).status == 200

    statuses = {s.external_id: (s.status, s.commission_amount) for s in session.query(Sale)}
    assert statuses == {"c1": ("pending", Decimal("1.00")), "s1": ("rejected", Decimal("2.00")),
                        "j1": ("pending", Decimal("3.00"))}
    assert _state(session, user) == (0, Decimal("4.00"))


@pytest.mark.committed
async def test_fifty_concurrent_identical_postbacks_make_one_sale(live_money_client, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    with Session(committed) as session, session.begin():
        user = make_user(session)
        make_offer(session, network="testnet", external_id="o1")
        uid = user.id
    params = generic_params(user_id=uid, offer_id="o1", txn_id="same", amount="1.00")
    responses = await asyncio.gather(*(
        live_money_client.get("/api/postbacks/testnet", params=params) for _ in range(50)))
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {200}
    assert len({b["data"]["saleId"] for b in bodies}) == 1
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sales")).scalar_one() == 1
        assert conn.execute(text("SELECT pending_balance FROM users")).scalar_one() == Decimal("0.70")
        outcomes = conn.execute(text("SELECT outcome, count(*) FROM postback_log GROUP BY 1")).all()
    assert dict(outcomes) == {"credited": 1, "duplicate": 49}


async def test_overlong_ids_are_refused_as_invalid(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    session.commit()
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t" * 200)
    assert (await money_client.get("/api/postbacks/testnet", params=params)).status == 400
    assert session.query(PostbackLog).one().verdict == "invalid"
