"""Refresh tokens (stored hashed, revocable, rotated with reuse detection), logout, password
change, profile, and what a register body cannot set."""

from __future__ import annotations

import datetime as dt
import hashlib

from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.models import AuditLog, RefreshToken, User
from tests.fixtures.auth import PASSWORD, api, bearer, make_client, new_email, register  # noqa: F401


async def _refresh(client, token: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/auth/refresh", json={"refreshToken": token})


async def test_refresh_without_rotation_keeps_the_token(api, session: Session) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    for _ in range(2):
        resp = await _refresh(api, data["refreshToken"])
        body = await resp.json()
        assert resp.status == 200 and set(body["data"]) == {"accessToken", "expiresIn"}
    me = await api.get("/api/auth/me", headers=bearer(body["data"]["accessToken"]))
    assert me.status == 200
    # Stored as the SHA-256 only: 256 bits of randomness, never the token itself.
    stored = session.scalars(select(RefreshToken.token_hash)).all()
    assert stored == [hashlib.sha256(data["refreshToken"].encode()).digest()]
    assert len(data["refreshToken"]) >= 43


async def test_refresh_after_logout_fails(api, session: Session) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    resp = await api.post("/api/auth/logout", json={"refreshToken": data["refreshToken"]})
    assert resp.status == 200
    assert (await _refresh(api, data["refreshToken"])).status == 401
    # A second logout, or one with an unknown token, is still a 200 and changes nothing.
    assert (await api.post("/api/auth/logout", json={"refreshToken": data["refreshToken"]})).status == 200
    assert (await api.post("/api/auth/logout", json={"refreshToken": "never-issued"})).status == 200
    actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions.count("auth.logout") == 1


async def test_garbage_refresh_tokens_are_401_or_422(api) -> None:  # type: ignore[no-untyped-def]
    assert (await _refresh(api, "x" * 40)).status == 401
    assert (await api.post("/api/auth/refresh", json={"refreshToken": ""})).status == 422
    assert (await api.post("/api/auth/refresh", json={"refreshToken": "x" * 600})).status == 422
    # No token in the body and no cookie (tests/web/handlers/test_auth_cookie.py): nothing to
    # refresh with.
    assert (await api.post("/api/auth/refresh", json={})).status == 401


async def test_refresh_token_expires(api, settings) -> None:  # type: ignore[no-untyped-def]
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        data = await register(api)
        frozen.tick(settings.refresh_token_ttl - 5)
        assert (await _refresh(api, data["refreshToken"])).status == 200
        frozen.tick(10)
        assert (await _refresh(api, data["refreshToken"])).status == 401


async def test_rotation_and_reuse_revokes_the_family(make_client, settings, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(refresh_rotation=True, refresh_reuse_grace_seconds=10)
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        data = await register(client)
        first = data["refreshToken"]
        resp = await _refresh(client, first)
        second = (await resp.json())["data"]["refreshToken"]
        assert resp.status == 200 and second != first
        # Two tabs refreshing at once: the used token still works within the grace period.
        frozen.tick(5)
        resp = await _refresh(client, first)
        assert resp.status == 200
        sibling = (await resp.json())["data"]["refreshToken"]
        # Past the grace period the used token is a stolen copy: the whole family dies.
        frozen.tick(10)
        resp = await _refresh(client, first)
        assert resp.status == 401
        for token in (second, sibling):
            assert (await _refresh(client, token)).status == 401
    reasons = set(session.scalars(select(RefreshToken.revoked_reason)).all())
    assert reasons == {"reuse"}
    assert session.scalars(select(AuditLog).where(AuditLog.action == "auth.refresh_reuse")).one()
    # A new sign-in starts a new family and works.
    login = await client.post("/api/auth/login", json={"email": data["user"]["email"], "password": PASSWORD})
    assert login.status == 200


async def test_rotation_chain_keeps_working(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(refresh_rotation=True)
    token = (await register(client))["refreshToken"]
    for _ in range(3):
        resp = await _refresh(client, token)
        assert resp.status == 200
        token = (await resp.json())["data"]["refreshToken"]


async def test_password_change_revokes_every_refresh_token(api) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    email = data["user"]["email"]
    other = (await (await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})).json())["data"]
    resp = await api.post(
        "/api/auth/password", json={"currentPassword": PASSWORD, "newPassword": "a brand new secret"},
        headers=bearer(data["accessToken"]),
    )
    body = await resp.json()
    assert resp.status == 200 and set(body["data"]) == {"user", "accessToken", "refreshToken", "expiresIn"}
    for old in (data["refreshToken"], other["refreshToken"]):
        assert (await _refresh(api, old)).status == 401
    assert (await _refresh(api, body["data"]["refreshToken"])).status == 200
    old_login = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert old_login.status == 401
    new_login = await api.post("/api/auth/login", json={"email": email, "password": "a brand new secret"})
    assert new_login.status == 200


async def test_register_ignores_fields_a_user_must_not_set(api, session: Session) -> None:  # type: ignore[no-untyped-def]
    resp = await api.post("/api/auth/register", json={
        "email": new_email(), "password": PASSWORD, "name": "Mallory", "role": "admin",
        "balance": 1000000, "pendingBalance": 5, "status": "banned", "id": 999999,
        "passwordHash": "$2b$04$x", "createdAt": "2000-01-01T00:00:00Z",
        "referredBy": 1, "signupIp": "10.0.0.1",
    })
    body = await resp.json()
    assert resp.status == 201
    user = body["data"]["user"]
    assert user["role"] == "user" and user["status"] == "active"
    assert user["balance"] == 0 and user["pendingBalance"] == 0 and user["id"] != 999999
    assert set(user) == {"id", "email", "name", "avatar", "role", "status", "balance",
                         "pendingBalance", "createdAt", "referralCode", "payoutsFrozen"}
    row = session.get(User, user["id"])
    assert row is not None and row.role == "user" and row.password_hash != "$2b$04$x"
    assert row.referred_by is None and row.signup_ip == "127.0.0.1"


async def test_responses_never_carry_hashes(api, session: Session) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    headers = bearer(data["accessToken"])
    texts = [
        await (await api.get("/api/auth/me", headers=headers)).text(),
        await (await api.post("/api/auth/login", json={"email": data["user"]["email"], "password": PASSWORD})).text(),
        await (await _refresh(api, data["refreshToken"])).text(),
        await (await api.patch("/api/auth/me", json={"name": "New"}, headers=headers)).text(),
    ]
    password_hash = session.scalars(select(User.password_hash)).one()
    token_hashes = session.scalars(select(RefreshToken.token_hash)).all()
    for text in texts:
        assert password_hash not in text and "$2b$" not in text
        assert "hash" not in text.lower()
        for digest in token_hashes:
            assert digest.hex() not in text


async def test_update_profile(api) -> None:  # type: ignore[no-untyped-def]
    data = await register(api, name="Before")
    headers = bearer(data["accessToken"])
    resp = await api.patch("/api/auth/me", json={"name": "After", "avatar": "https://cdn.example.com/a.png",
                                                 "role": "admin", "email": "x@y.zz"}, headers=headers)
    body = await resp.json()
    assert resp.status == 200
    assert body["data"]["name"] == "After" and body["data"]["avatar"] == "https://cdn.example.com/a.png"
    assert body["data"]["role"] == "user" and body["data"]["email"] == data["user"]["email"]
    resp = await api.patch("/api/auth/me", json={"avatar": None}, headers=headers)
    assert (await resp.json())["data"]["avatar"] is None and (await resp.json())["data"]["name"] == "After"
    for bad in ({"avatar": "http://cdn.example.com/a.png"}, {"avatar": "javascript:alert(1)"},
                {"avatar": "https://"}, {"name": ""}, {"name": None}, {"name": "x" * 101}):
        resp = await api.patch("/api/auth/me", json=bad, headers=headers)
        assert resp.status == 422, bad
    assert (await api.patch("/api/auth/me", json={"name": "x"})).status == 401


async def test_audit_of_sign_ins_carries_trace_id_and_client_ip(make_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    plain = await make_client()
    data = await register(plain)
    email = data["user"]["email"]
    trace = {"X-Trace-ID": "trace-login-0001", "X-Forwarded-For": "203.0.113.9"}
    await plain.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=trace)
    proxied = await make_client(trusted_proxies=("127.0.0.1/32",))
    trace2 = {"X-Trace-ID": "trace-login-0002", "X-Forwarded-For": "203.0.113.9"}
    await proxied.post("/api/auth/login", json={"email": email, "password": "wrong one"}, headers=trace2)
    rows = session.execute(
        select(AuditLog.action, AuditLog.ip, AuditLog.actor_id)
        .where(AuditLog.trace_id.in_(["trace-login-0001", "trace-login-0002"])).order_by(AuditLog.id)
    ).all()
    uid = data["user"]["id"]
    # X-Forwarded-For counts only from a configured proxy.
    assert [tuple(r) for r in rows] == [("auth.login", "127.0.0.1", uid), ("auth.login_failed", "203.0.113.9", None)]
