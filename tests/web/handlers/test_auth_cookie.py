"""The refresh token as an HttpOnly cookie (web/refresh_cookie.py, docs/console.md): set by
sign-in, taken by refresh and sign-out when the JSON body names no token, cleared by sign-out;
the JSON contract of API.md section 2 is unchanged."""

from __future__ import annotations

from http.cookies import SimpleCookie

from tests.fixtures.auth import PASSWORD, api, make_client, new_email, register  # noqa: F401
from web.refresh_cookie import COOKIE


def _set_cookie(resp) -> SimpleCookie:  # type: ignore[no-untyped-def]
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


def _cookie(token: str) -> dict[str, str]:
    # Sent by hand: the test client's jar keeps no cookie of a bare IP address, nor a Secure one
    # over http.
    return {"Cookie": f"{COOKIE}={token}"}


async def _login(client, email: str):  # type: ignore[no-untyped-def]
    resp = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200
    return resp


async def test_login_sets_a_strict_httponly_cookie_on_the_auth_path(make_client) -> None:  # type: ignore[no-untyped-def]
    api = await make_client(app_env="production", jwt_secret="x" * 40, flower_basic_auth="a:b")
    data = await register(api)
    resp = await _login(api, data["user"]["email"])
    body = await resp.json()
    cookie = _set_cookie(resp)[COOKIE]
    assert cookie.value == body["data"]["refreshToken"]  # the body keeps the token for API clients
    assert cookie["httponly"] and cookie["secure"]
    assert cookie["samesite"] == "Strict" and cookie["path"] == "/api/auth"
    assert int(cookie["max-age"]) > 0


async def test_cookie_is_not_secure_in_development(make_client) -> None:  # type: ignore[no-untyped-def]
    api = await make_client(app_env="development")
    resp = await api.post("/api/auth/register", json={
        "email": new_email(), "password": PASSWORD, "name": "Dev"})
    cookie = _set_cookie(resp)[COOKIE]
    assert not cookie["secure"] and cookie["httponly"]


async def test_refresh_and_logout_take_the_cookie(api) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    cookie = _cookie(data["refreshToken"])
    resp = await api.post("/api/auth/refresh", json={}, headers=cookie)
    assert resp.status == 200
    assert set((await resp.json())["data"]) == {"accessToken", "expiresIn"}

    out = await api.post("/api/auth/logout", json={}, headers=cookie)
    assert out.status == 200
    cleared = _set_cookie(out)[COOKIE]
    assert cleared.value == "" and cleared["path"] == "/api/auth"
    # The token is revoked, not only forgotten by the browser.
    again = await api.post("/api/auth/refresh", json={"refreshToken": data["refreshToken"]})
    assert again.status == 401


async def test_without_a_body_token_or_a_cookie_refresh_is_401(make_client) -> None:  # type: ignore[no-untyped-def]
    api = await make_client()
    assert (await api.post("/api/auth/refresh", json={})).status == 401
    assert (await api.post("/api/auth/logout", json={})).status == 401


async def test_the_cookie_is_only_taken_with_a_json_body(api) -> None:  # type: ignore[no-untyped-def]
    """What a cross-site form could send (no JSON) is refused before the cookie is read."""
    cookie = _cookie((await register(api))["refreshToken"])
    form = await api.post("/api/auth/refresh", data={"refreshToken": ""}, headers=cookie)
    assert form.status == 415
    assert (await api.post("/api/auth/logout", data="", headers=cookie)).status == 415
    assert (await api.post("/api/auth/refresh", json={}, headers=cookie)).status == 200


async def test_rotation_moves_the_cookie_on_and_keeps_the_token_out_of_the_body(make_client) -> None:  # type: ignore[no-untyped-def]
    """A refresh through the cookie answers the rotated token in the cookie only: in the body,
    page script (an injected one too) could read it, and HttpOnly would protect nothing."""
    api = await make_client(refresh_rotation=True)
    data = await register(api)
    resp = await api.post("/api/auth/refresh", json={}, headers=_cookie(data["refreshToken"]))
    body = await resp.json()
    assert resp.status == 200
    assert set(body["data"]) == {"accessToken", "expiresIn"}
    rotated = _set_cookie(resp)[COOKIE].value
    assert rotated and rotated != data["refreshToken"]
    assert (await api.post("/api/auth/refresh", json={}, headers=_cookie(rotated))).status == 200


async def test_a_body_token_still_wins(api) -> None:  # type: ignore[no-untyped-def]
    first = await register(api)
    second = await register(api)
    await api.post("/api/auth/logout", json={"refreshToken": second["refreshToken"]})
    resp = await api.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]},
                          headers=_cookie(second["refreshToken"]))
    assert resp.status == 200


async def test_a_body_token_leaves_the_cookie_alone(make_client) -> None:  # type: ignore[no-untyped-def]
    """Rotating the body's token says nothing of the cookie's session: the cookie must not be
    replaced by the successor of another sign-in's token."""
    api = await make_client(refresh_rotation=True)
    browser, other = await register(api), await register(api)
    resp = await api.post("/api/auth/refresh", json={"refreshToken": other["refreshToken"]},
                          headers=_cookie(browser["refreshToken"]))
    body = await resp.json()
    assert resp.status == 200 and body["data"]["refreshToken"] != other["refreshToken"]
    assert COOKIE not in _set_cookie(resp)
    still = await api.post("/api/auth/refresh", json={}, headers=_cookie(browser["refreshToken"]))
    assert still.status == 200


def _own(client) -> str:  # type: ignore[no-untyped-def]
    return f"http://{client.server.host}:{client.server.port}"


async def test_the_cookie_is_not_taken_from_another_origins_request(make_client) -> None:  # type: ignore[no-untyped-def]
    """SameSite=Strict lets a request from a sibling subdomain carry the cookie, and an origin in
    ALLOWED_ORIGINS passes CORS with credentials and reads the answer: only the app's own pages
    (or a client that sends no Origin) may spend the cookie."""
    foreign = "https://shop.example"
    api = await make_client(allowed_origins=(foreign,))
    token = (await register(api))["refreshToken"]
    for origin in (foreign, "null", f"http://{api.server.host}:1"):
        headers = {**_cookie(token), "Origin": origin}
        refused = await api.post("/api/auth/refresh", json={}, headers=headers)
        assert refused.status == 401, origin
        assert "accessToken" not in ((await refused.json()).get("data") or {})
        assert (await api.post("/api/auth/logout", json={}, headers=headers)).status == 401
    own = await api.post("/api/auth/refresh", json={}, headers={**_cookie(token), "Origin": _own(api)})
    assert own.status == 200  # and the foreign sign-outs above revoked nothing


async def test_sign_in_from_another_origin_sets_no_cookie(make_client) -> None:  # type: ignore[no-untyped-def]
    """Another origin's front end keeps its tokens from the body; a cookie set for it would
    replace the console's session in the same browser."""
    foreign = "https://shop.example"
    api = await make_client(allowed_origins=(foreign,))
    email = (await register(api))["user"]["email"]
    login = {"email": email, "password": PASSWORD}
    away = await api.post("/api/auth/login", json=login, headers={"Origin": foreign})
    assert away.status == 200 and (await away.json())["data"]["refreshToken"]
    assert COOKIE not in _set_cookie(away)
    home = await api.post("/api/auth/login", json=login, headers={"Origin": _own(api)})
    assert COOKIE in _set_cookie(home)
