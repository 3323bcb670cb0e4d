"""The auth routes' HTTP answers (web/handlers/auth.py); the sign-in rules themselves are tested
in tests/common/services/test_auth.py, the refresh cookie in test_auth_cookie.py."""

from __future__ import annotations

from tests.fixtures.auth import PASSWORD, api, bearer, make_client, new_email  # noqa: F401


async def test_answers_that_carry_tokens_are_not_stored(make_client) -> None:  # type: ignore[no-untyped-def]
    """A token in a cache (the browser's, a proxy's) outlives the sign-out (RFC 6749 section
    5.1: token responses are Cache-Control: no-store)."""
    api = await make_client(refresh_rotation=True)
    email = new_email()
    register = await api.post("/api/auth/register",
                              json={"email": email, "password": PASSWORD, "name": "Pat"})
    login = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    data = (await login.json())["data"]
    refresh = await api.post("/api/auth/refresh", json={"refreshToken": data["refreshToken"]})
    password = await api.post("/api/auth/password", headers=bearer(data["accessToken"]),
                              json={"currentPassword": PASSWORD, "newPassword": "a brand new secret"})
    for resp in (register, login, refresh, password):
        assert resp.status in (200, 201), await resp.text()
        assert resp.headers.get("Cache-Control") == "no-store", resp.url
