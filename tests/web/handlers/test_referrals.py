"""The referral routes (docs/api.md "Referrals"): sign-up with a code, the member's referral summary and
their referees, masked; and what admins see of a member's referrals."""

from __future__ import annotations

import itertools
from decimal import Decimal

from aiohttp.test_utils import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import User
from common.services.auth import register_user
from common.services.sales import approve_sale, credit_sale, reverse_sale
from tests.fixtures.admin import admin, admin_headers  # noqa: F401
from tests.fixtures.auth import PASSWORD, api, bearer, make_client, new_email  # noqa: F401
from tests.fixtures.factories import auth_headers
from tests.fixtures.money_factories import make_offer

_n = itertools.count(1)
_HASH = "$2b$04$Ec4r3rYb3gSxO0bBBmHeT.dGxlwP4gMl2U3rjd6E5Yd5bH2XcI9yC"


def _member(session: Session, *, code: str | None = None, name: str | None = None) -> User:
    n = next(_n)
    return register_user(
        session, email=f"ref{n}@example.com", password_hash=_HASH, name=name or f"Member {n}",
        refresh_ttl=3600, ip=f"198.51.100.{n % 250 + 1}", trace_id=None, referral_code=code,
    ).user


def _earn(session: Session, user_id: int, txn: str, amount: str) -> int:
    sale = credit_sale(session, network="testnet", external_id=txn, user_id=user_id,
                       offer_external_id="o1", amount=Decimal(amount), hold_seconds=0).sale_id
    assert sale is not None and approve_sale(session, sale_id=sale)
    return sale


async def _register(api: TestClient, **extra: object):  # type: ignore[no-untyped-def]
    email = new_email()
    resp = await api.post("/api/auth/register", json={
        "email": email, "password": PASSWORD, "name": "Pat", **extra})
    return email, resp.status, await resp.json()


async def test_sign_up_with_a_code_links_the_referrer(api: TestClient, session: Session) -> None:
    referrer = _member(session)
    session.commit()
    _, status, body = await _register(api, referralCode=referrer.referral_code.lower())
    assert status == 201, body
    profile = body["data"]["user"]
    assert len(profile["referralCode"]) == 10 and profile["referralCode"] != referrer.referral_code
    row = session.get(User, profile["id"])
    assert row is not None and row.referred_by == referrer.id and row.signup_ip == "127.0.0.1"
    me = await api.get("/api/auth/me", headers=bearer(body["data"]["accessToken"]))
    assert (await me.json())["data"]["referralCode"] == profile["referralCode"]


async def test_an_unknown_code_is_a_422_and_nothing_is_stored(api: TestClient, session: Session) -> None:
    email, status, body = await _register(api, referralCode="ZZZZZZZZZZ")
    assert status == 422 and body["errors"] == ["referralCode: no member has this code"]
    assert session.execute(select(User).where(User.email == email)).first() is None
    for bad in ("", "x" * 33, 12345678):
        _, status, _ = await _register(api, referralCode=bad)
        assert status == 422


async def test_sign_up_address_is_the_client_behind_our_proxy(make_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    api = await make_client(trusted_proxies=("127.0.0.1",))
    resp = await api.post("/api/auth/register", json={"email": new_email(), "password": PASSWORD,
                                                      "name": "Pat"},
                          headers={"X-Forwarded-For": "203.0.113.50"})
    user_id = (await resp.json())["data"]["user"]["id"]
    assert session.execute(text("SELECT signup_ip FROM users WHERE id = :id"),
                           {"id": user_id}).scalar_one() == "203.0.113.50"


async def test_the_summary_and_the_masked_referees(api: TestClient, session: Session, settings: Settings) -> None:
    referrer = _member(session)
    joe = _member(session, code=referrer.referral_code, name="Joanna Smith")
    kim = _member(session, code=referrer.referral_code, name="K")
    _member(session)  # someone else's
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    _earn(session, joe.id, "t1", "12.34")
    reverse_sale(session, sale_id=_earn(session, joe.id, "t2", "50.00"))
    _earn(session, kim.id, "t3", "3.00")
    session.commit()
    headers = auth_headers(settings, referrer)
    body = await (await api.get("/api/referrals", headers=headers)).json()
    assert body["data"] == {"referralCode": referrer.referral_code, "referees": 2,
                            "earnings": 1.53}
    page = await (await api.get("/api/referrals/referees?limit=1", headers=headers)).json()
    assert page["pagination"] == {"page": 1, "limit": 1, "total": 2, "totalPages": 2}
    assert page["data"] == [{"name": "K***", "joinedAt": page["data"][0]["joinedAt"],
                             "earned": 0.3}]
    second = await (await api.get("/api/referrals/referees?limit=1&page=2", headers=headers)).json()
    assert [(r["name"], r["earned"]) for r in second["data"]] == [("Jo***", 1.23)]
    assert second["data"][0]["joinedAt"].endswith("Z")
    # A member without referees.
    alone = await (await api.get("/api/referrals", headers=auth_headers(settings, kim))).json()
    assert alone["data"] == {"referralCode": kim.referral_code, "referees": 0, "earnings": 0}
    assert (await api.get("/api/referrals")).status == 401
    assert (await api.get("/api/referrals/referees?limit=0", headers=headers)).status == 400


async def test_admins_see_a_members_referrals(api: TestClient, session: Session,  # type: ignore[no-untyped-def]
                                              admin_headers) -> None:
    referrer = _member(session, name="Rita Referrer")
    referee = _member(session, code=referrer.referral_code)
    make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
    _earn(session, referee.id, "t1", "20.00")
    session.commit()
    mine = (await (await api.get(f"/api/admin/users/{referrer.id}", headers=admin_headers)).json())["data"]
    assert mine["referralCode"] == referrer.referral_code
    assert mine["referral"] == {"referrer": None, "referees": 1, "earnings": 2.0}
    theirs = (await (await api.get(f"/api/admin/users/{referee.id}", headers=admin_headers)).json())["data"]
    assert theirs["referral"] == {
        "referrer": {"id": referrer.id, "email": referrer.email, "name": "Rita Referrer"},
        "referees": 0, "earnings": 0}
    listed = (await (await api.get("/api/admin/users", headers=admin_headers)).json())["data"]
    assert {u["referralCode"] for u in listed} >= {referrer.referral_code, referee.referral_code}
    dashboard = (await (await api.get("/api/admin/analytics/dashboard",
                                      headers=admin_headers)).json())["data"]
    assert dashboard["recent_activity"]["referral_earnings"] == 2.0
