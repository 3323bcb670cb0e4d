"""The postback log for support (``GET /api/admin/postbacks``): every callback of every scheme is
found by its transaction id, user, network, outcome and time; signatures are kept for replays but
never shown; filters are validated before anything runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import AuditLog, PostbackLog, User
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import money_client, money_settings  # noqa: F401
from tests.fixtures.money_factories import make_offer
from tests.fixtures.schemes import SIGNATURE_PARAM, signed

URL = "/api/admin/postbacks"


@pytest.fixture
def admin(session: Session) -> User:
    return make_user(session, role="admin")


@pytest.fixture
def headers(settings: Settings, admin: User) -> dict[str, str]:
    return auth_headers(settings, admin)


async def _search(client: TestClient, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    resp = await client.get(URL, params={k: str(v) for k, v in query.items()}, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["success"] is True
    return body


async def _callbacks(client: TestClient, session: Session) -> tuple[User, User, dict[str, dict[str, str]]]:
    """One callback of each kind: credited, duplicate, bad signature (another user), a Tapjoy
    credit and a CPX credit (their own parameter names). Returns the users and what was sent."""
    alice, bob = make_user(session), make_user(session)
    for network in ("testnet", "tapjoy", "cpx"):
        make_offer(session, network=network, external_id="*")
    session.commit()
    sent = {
        "credit": signed("testnet", user=alice.id, txn="t-1"),
        "bad": {**signed("testnet", user=bob.id, txn="t-2"), "sig": "f" * 64},
        "tapjoy": signed("tapjoy", user=bob.id, txn="tj-9"),
        "cpx": signed("cpx", user=alice.id, txn="cx-5"),
    }
    for key, network, status in (("credit", "testnet", 200), ("credit", "testnet", 200),
                                 ("bad", "testnet", 403), ("tapjoy", "tapjoy", 200),
                                 ("cpx", "cpx", 200)):
        resp = await client.get(f"/api/postbacks/{network}", params=sent[key])
        assert resp.status == status, await resp.text()
    return alice, bob, sent


async def test_filters_find_each_callback(money_client, session: Session, headers) -> None:  # type: ignore[no-untyped-def]
    alice, bob, _ = await _callbacks(money_client, session)

    everything = await _search(money_client, headers)
    ids = [e["id"] for e in everything["data"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5  # newest first
    assert everything["pagination"] == {"page": 1, "limit": 20, "total": 5, "totalPages": 1}

    by_txn = (await _search(money_client, headers, txnId="t-1"))["data"]
    assert [(e["outcome"], e["txnId"], e["userId"]) for e in by_txn] == [
        ("duplicate", "t-1", alice.id), ("credited", "t-1", alice.id)]
    assert by_txn[1]["saleId"] is not None and by_txn[0]["saleId"] == by_txn[1]["saleId"]

    # A refused callback is found by the user it names, and by its verdict as the outcome.
    bobs = (await _search(money_client, headers, userId=bob.id))["data"]
    assert [(e["network"], e["verdict"]) for e in bobs] == [("tapjoy", "accepted"),
                                                            ("testnet", "bad_signature")]
    refused = (await _search(money_client, headers, network="testnet", outcome="bad_signature"))["data"]
    assert [(e["txnId"], e["userId"], e["outcome"]) for e in refused] == [("t-2", bob.id, None)]

    # Each scheme's own names: Tapjoy's ``id``/``snuid``, CPX's ``trans_id``/``user_id``.
    assert [e["userId"] for e in (await _search(money_client, headers, txnId="tj-9"))["data"]] == [bob.id]
    cpx = (await _search(money_client, headers, network="cpx", outcome="credited"))["data"]
    assert [(e["txnId"], e["userId"]) for e in cpx] == [("cx-5", alice.id)]

    credited = await _search(money_client, headers, outcome="credited", limit=1, page=2)
    assert len(credited["data"]) == 1 and credited["pagination"]["total"] == 3
    assert (await _search(money_client, headers, network="TESTNET"))["pagination"]["total"] == 3
    assert (await _search(money_client, headers, txnId="t-1", userId=bob.id))["data"] == []


async def test_time_range(money_client, session: Session, headers) -> None:  # type: ignore[no-untyped-def]
    await _callbacks(money_client, session)
    today = dt.datetime.now(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    assert (await _search(money_client, headers, **{"from": today, "to": tomorrow}))["pagination"]["total"] == 5
    day = {"from": today.isoformat(), "to": tomorrow.isoformat(), "network": "testnet",
           "outcome": "credited"}
    assert (await _search(money_client, headers, **day))["pagination"]["total"] == 1
    assert (await _search(money_client, headers, **{"from": tomorrow}))["data"] == []
    assert (await _search(money_client, headers, **{"from": tomorrow, "to": today}))["data"] == []
    assert (await _search(money_client, headers, to=f"{today}T00:00:00Z"))["data"] == []
    # Past the last page: no rows, the total still told.
    past = await _search(money_client, headers, page=9)
    assert past["data"] == [] and past["pagination"]["total"] == 5


@pytest.mark.parametrize("query", [
    {"from": "yesterday"}, {"to": "2026-13-01"}, {"outcome": "exploded"}, {"userId": "abc"},
    {"userId": "0"}, {"limit": "101"}, {"page": "0"},
    {"txnId": "x" * 129}, {"network": "n" * 65},
])
async def test_bad_filters_are_400_in_the_envelope(money_client, session: Session, headers, query) -> None:  # type: ignore[no-untyped-def]
    resp = await money_client.get(URL, params=query, headers=headers)
    body = await resp.json()
    assert resp.status == 400, body
    assert body["success"] is False and body["errors"]
    assert session.scalar(select(func.count()).select_from(AuditLog)) == 0


async def test_signatures_are_stored_but_never_shown(money_client, session: Session, headers) -> None:  # type: ignore[no-untyped-def]
    make_offer(session, network="sr", external_id="*")
    user = make_user(session)
    session.commit()
    sr = signed("sr", user=user.id, txn="sr-1")
    assert (await money_client.get("/api/postbacks/sr", params=sr)).status == 200
    sent = await _callbacks(money_client, session)
    secrets = {sr["sig"], *(p[SIGNATURE_PARAM[n]] for n, p in (
        ("testnet", sent[2]["credit"]), ("testnet", sent[2]["bad"]), ("tapjoy", sent[2]["tapjoy"]),
        ("cpx", sent[2]["cpx"])))}

    resp = await money_client.get(URL, headers=headers)
    raw = await resp.text()
    assert resp.status == 200 and raw.count('"[redacted]"') == 6
    for secret in secrets | {"test-secret", "sr-secret", "tj-secret", "cpx-secret"}:
        assert secret not in raw
    shown = {e["network"]: e["params"] for e in (await resp.json())["data"]}
    assert shown["tapjoy"]["verifier"] == "[redacted]" and shown["tapjoy"]["id"] == "tj-9"
    assert shown["cpx"]["secure_hash"] == "[redacted]" and shown["sr"]["sig"] == "[redacted]"
    # The row keeps it: a replay checks it again with today's secret.
    stored = session.scalars(select(PostbackLog.params).where(PostbackLog.network == "sr")).one()
    assert stored["sig"] == sr["sig"]


async def test_only_admins(money_client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    member = make_user(session)
    assert (await money_client.get(URL)).status == 401
    resp = await money_client.get(URL, headers=auth_headers(settings, member))
    assert resp.status == 403 and (await resp.json())["success"] is False
