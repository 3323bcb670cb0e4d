"""Withdrawals: the hold, Idempotency-Key, cancellation, and 50 concurrent requests."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import LedgerEntry, OutboxEvent, Payment, User
from tests.factories import auth_headers
from tests.money.factories import make_funded_user

BODY = {"amount": 10, "method": "paypal", "destination": "me@example.com"}


def _headers(settings: Settings, user: User, key: str | None = "k1") -> dict[str, str]:
    headers = auth_headers(settings, user)
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _balance(session: Session, user: User) -> Decimal:
    session.expire_all()
    return session.get(User, user.id).balance  # type: ignore[union-attr]


async def test_withdrawal_holds_and_replays(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "25.50")
    session.commit()
    resp = await client.post("/api/payments", json=BODY, headers=_headers(settings, user))
    first = await resp.json()
    assert resp.status == 202, first
    data = first["data"]
    assert {k: data[k] for k in ("amount", "method", "destination", "status", "failureReason")} == {
        "amount": 10, "method": "paypal", "destination": "me@example.com", "status": "pending",
        "failureReason": None}
    assert _balance(session, user) == Decimal("15.50")
    hold = session.query(LedgerEntry).filter_by(kind="payout_hold").one()
    assert (hold.amount, hold.reference_id) == (Decimal("-10.00"), data["id"])
    status_event = session.query(OutboxEvent).filter_by(event="payment:status").one()
    assert status_event.data == {"paymentId": data["id"], "status": "pending", "amount": 10.0}

    again = await client.post("/api/payments", json=dict(reversed(BODY.items())), headers=_headers(settings, user))
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["data"] == data
    other_body = await client.post("/api/payments", json={**BODY, "amount": 11}, headers=_headers(settings, user))
    assert other_body.status == 409
    assert session.query(Payment).count() == 1 and _balance(session, user) == Decimal("15.50")

    got = await client.get(f"/api/payments/{data['id']}", headers=auth_headers(settings, user))
    assert (await got.json())["data"] == data
    listed = await client.get("/api/payments", headers=auth_headers(settings, user))
    assert [p["id"] for p in (await listed.json())["data"]] == [data["id"]]


async def test_user_b_never_gets_user_a_reply(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    a = make_funded_user(session, "20")
    b = make_funded_user(session, "20")
    session.commit()
    ra = await (await client.post("/api/payments", json=BODY, headers=_headers(settings, a, "shared"))).json()
    rb_resp = await client.post("/api/payments", json=BODY, headers=_headers(settings, b, "shared"))
    rb = await rb_resp.json()
    assert rb_resp.status == 202 and "Idempotent-Replayed" not in rb_resp.headers
    assert rb["data"]["id"] != ra["data"]["id"]
    assert (await client.get(f"/api/payments/{ra['data']['id']}", headers=auth_headers(settings, b))).status == 404
    assert _balance(session, a) == _balance(session, b) == Decimal("10.00")


@pytest.mark.parametrize(
    ("amount", "status"),
    [("20.01", 422), ("4.99", 422), ("-5", 422), ("0", 422), ("5.001", 422), ("abc", 422)],
)
async def test_refused_amounts_hold_nothing(client, session: Session, settings: Settings, amount, status) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "20")
    session.commit()
    resp = await client.post("/api/payments", json={**BODY, "amount": amount}, headers=_headers(settings, user))
    assert resp.status == status, await resp.json()
    assert _balance(session, user) == Decimal("20.00")
    assert session.query(Payment).count() == 0


async def test_refusal_is_replayed_and_key_is_required(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "8")
    session.commit()
    assert (await client.post("/api/payments", json=BODY, headers=_headers(settings, user, None))).status == 400
    first = await client.post("/api/payments", json=BODY, headers=_headers(settings, user))
    assert first.status == 422
    again = await client.post("/api/payments", json=BODY, headers=_headers(settings, user))
    assert again.status == 422 and again.headers["Idempotent-Replayed"] == "true"


async def test_cancel_only_while_pending(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_funded_user(session, "10")
    other = make_funded_user(session, "0")
    session.commit()
    payment = (await (await client.post("/api/payments", json=BODY, headers=_headers(settings, user))).json())["data"]
    assert (await client.post(f"/api/payments/{payment['id']}/cancel", headers=auth_headers(settings, other))).status == 404
    resp = await client.post(f"/api/payments/{payment['id']}/cancel", headers=auth_headers(settings, user))
    assert resp.status == 200 and (await resp.json())["data"]["status"] == "cancelled"
    assert _balance(session, user) == Decimal("10.00")
    assert (await client.post(f"/api/payments/{payment['id']}/cancel", headers=auth_headers(settings, user))).status == 409
    assert _balance(session, user) == Decimal("10.00")


@pytest.mark.committed
async def test_fifty_concurrent_withdrawals_of_the_whole_balance(live_client, committed: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "10")
    responses = await asyncio.gather(*(
        live_client.post("/api/payments", json=BODY, headers=_headers(settings, user, f"k{i}"))
        for i in range(50)))
    statuses = sorted(r.status for r in responses)
    assert statuses.count(202) == 1 and set(statuses) == {202, 422}
    with committed.connect() as conn:
        assert conn.execute(text("SELECT balance FROM users")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM payments")).scalar_one() == 1


@pytest.mark.committed
async def test_concurrent_requests_with_one_key_execute_once(live_client, committed: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "100")
    responses = await asyncio.gather(*(
        live_client.post("/api/payments", json=BODY, headers=_headers(settings, user, "same"))
        for _ in range(20)))
    assert {r.status for r in responses} <= {202, 409} and any(r.status == 202 for r in responses)
    ids = {(await r.json())["data"]["id"] for r in responses if r.status == 202}
    assert len(ids) == 1
    with committed.connect() as conn:
        assert conn.execute(text("SELECT balance FROM users")).scalar_one() == Decimal("90.00")


def test_expired_keys_are_taken_over_and_purged(session: Session) -> None:
    from common.services.idempotency import claim_key, purge_expired, store_response

    user = make_funded_user(session, "0")
    assert claim_key(session, user_id=user.id, key="k", request_hash=b"a" * 32) is None
    store_response(session, user_id=user.id, key="k", status=202, body={"data": 1})
    assert claim_key(session, user_id=user.id, key="k", request_hash=b"a" * 32).status == 202  # type: ignore[union-attr]
    session.execute(text("UPDATE idempotency_keys SET expires_at = now() - interval '1 s'"))
    assert claim_key(session, user_id=user.id, key="k", request_hash=b"b" * 32) is None
    session.execute(text("UPDATE idempotency_keys SET expires_at = now() - interval '1 s'"))
    assert purge_expired(session) == 1
