"""Passwords of every awkward length: a 4xx or a success, never a 500, never truncated; and a
sign-in that says nothing about whether the email exists."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.models import AuditLog
from common.security.passwords import hash_password, verify_password
from tests.fixtures.auth import PASSWORD, api, bearer, make_client, new_email, register  # noqa: F401
from web.keys import PASSWORDS

# (label, password, accepted for a new account). Byte lengths are of the UTF-8 form.
PASSWORDS_BY_SIZE = [
    ("7 bytes", "a" * 7, False),
    ("8 bytes", "a" * 8, True),
    ("72 bytes", "p" * 72, True),
    ("72 bytes multibyte", "é" * 36, True),
    ("73 bytes", "p" * 73, True),
    ("73 bytes multibyte", "a" + "é" * 36, True),
    ("128 emoji, 512 bytes", "😀" * 128, True),
    ("1000 bytes", "p" * 1000, False),
    ("1000 bytes multibyte", "😀" * 250, False),
    ("7 multibyte chars, 28 bytes", "😀" * 7, False),
]


def test_long_passwords_keep_every_byte() -> None:
    long = "é" * 40 + "tail-a"
    hashed = hash_password(long, rounds=4)
    assert verify_password(long, hashed)
    # bcrypt alone would read only the first 72 bytes: these would all match.
    assert not verify_password("é" * 40 + "tail-b", hashed)
    assert not verify_password("é" * 36, hashed)
    assert not verify_password(long, "not a bcrypt hash")
    # A NUL byte ends the password for some bcrypt implementations; not after the pre-hash.
    with_nul = hash_password("abc\x00defgh", rounds=4)
    assert verify_password("abc\x00defgh", with_nul) and not verify_password("abc\x00xxxxx", with_nul)


@pytest.mark.parametrize(("label", "password", "accepted"), PASSWORDS_BY_SIZE)
async def test_register_and_login_with_password_sizes(api, label: str, password: str, accepted: bool) -> None:  # type: ignore[no-untyped-def]
    email = new_email()
    resp = await api.post("/api/auth/register", json={"email": email, "password": password, "name": "P"})
    assert resp.status == (201 if accepted else 422), (label, await resp.text())
    login = await api.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status == (200 if accepted else 401), label
    if accepted and len(password.encode()) > 72:
        truncated = password.encode()[:72].decode(errors="ignore")
        resp = await api.post("/api/auth/login", json={"email": email, "password": truncated})
        assert resp.status == 401, label


@pytest.mark.parametrize(("label", "password", "accepted"), PASSWORDS_BY_SIZE)
async def test_password_change_with_password_sizes(api, label: str, password: str, accepted: bool) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    resp = await api.post(
        "/api/auth/password", json={"currentPassword": PASSWORD, "newPassword": password},
        headers=bearer(data["accessToken"]),
    )
    assert resp.status == (200 if accepted else 422), (label, await resp.text())
    if accepted:
        login = await api.post("/api/auth/login", json={"email": data["user"]["email"], "password": password})
        assert login.status == 200, label


@pytest.mark.parametrize("password", ["", "x" * 1025, 12345678, None])
async def test_login_with_malformed_password_is_4xx(api, password: object) -> None:  # type: ignore[no-untyped-def]
    resp = await api.post("/api/auth/login", json={"email": new_email(), "password": password})
    assert resp.status == 422


async def test_wrong_current_password_on_change_is_422(api) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    resp = await api.post(
        "/api/auth/password", json={"currentPassword": "not it at all", "newPassword": "a" * 20},
        headers=bearer(data["accessToken"]),
    )
    body = await resp.json()
    assert resp.status == 422 and body["errors"] == ["currentPassword: incorrect"]


def _comparable(body: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in body.items() if k != "timestamp"}


async def test_unknown_email_and_wrong_password_look_the_same(api, session: Session, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    checked: list[str] = []
    import web.passwords

    real = web.passwords.verify_password

    def spy(password: str, hashed: str) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(web.passwords, "verify_password", spy)
    data = await register(api)
    wrong = await api.post("/api/auth/login", json={"email": data["user"]["email"], "password": "wrong password"})
    unknown = await api.post("/api/auth/login", json={"email": "nobody@example.com", "password": "wrong password"})
    assert wrong.status == unknown.status == 401
    assert _comparable(await wrong.json()) == _comparable(await unknown.json())
    assert set(wrong.headers) - {"Date"} == set(unknown.headers) - {"Date"}
    # Both paths ran bcrypt: the unknown email against the dummy hash of the configured cost.
    dummy = api.app[PASSWORDS]._dummy
    assert len(checked) == 2 and checked[1] == dummy and dummy.startswith("$2b$04$")
    reasons = session.scalars(
        select(AuditLog.after["reason"].astext).where(AuditLog.action == "auth.login_failed")
        .order_by(AuditLog.id)
    ).all()
    assert reasons == ["wrong_password", "unknown_email"]


async def test_emails_are_case_insensitive(api) -> None:  # type: ignore[no-untyped-def]
    data = await register(api, email="Mixed.Case@Example.com")
    assert data["user"]["email"] == "Mixed.Case@Example.com"
    resp = await api.post("/api/auth/login", json={"email": "mixed.case@example.COM", "password": PASSWORD})
    assert resp.status == 200
    again = await api.post("/api/auth/register", json={"email": "MIXED.case@example.com", "password": PASSWORD, "name": "x"})
    assert again.status == 409
    assert (await again.json())["errors"] == ["email: already registered"]


async def test_nul_characters_are_refused_not_500(api) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    headers = bearer(data["accessToken"])
    cases = [
        ("/api/auth/register", {"email": "a\x00b@example.com", "password": PASSWORD, "name": "x"}, None),
        ("/api/auth/register", {"email": new_email(), "password": PASSWORD, "name": "x\x00y"}, None),
        ("/api/auth/login", {"email": "a\x00b@example.com", "password": PASSWORD}, None),
    ]
    for path, body, hdrs in cases:
        assert (await api.post(path, json=body, headers=hdrs)).status == 422, body
    for body in ({"name": "x\x00"}, {"avatar": "https://cdn.example.com/\x00.png"}):
        assert (await api.patch("/api/auth/me", json=body, headers=headers)).status == 422, body
