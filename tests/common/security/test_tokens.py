"""Access tokens: every way a token can be wrong is a 401 on /api/auth/me, and expiry is real."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import jwt
import orjson
import pytest
from freezegun import freeze_time

from common.config import Settings
from common.security.tokens import issue_access_token
from tests.fixtures.auth import api, bearer, make_client, register  # noqa: F401


def _claims(settings: Settings, user_id: int, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": str(user_id), "userId": user_id, "email": "x@example.com", "role": "user",
        "iat": now, "nbf": now, "exp": now + 600, "jti": "j" * 32, "type": "access",
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not _DROP}


_DROP = object()


def _sign(settings: Settings, claims: dict[str, Any], *, key: str | None = None) -> str:
    return jwt.encode(claims, key or settings.jwt_secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _alg_none(settings: Settings, uid: int) -> str:
    header = _b64(b'{"alg":"none","typ":"JWT"}')
    return f"{header}.{_b64(orjson.dumps(_claims(settings, uid)))}."


def _hs512(settings: Settings, uid: int) -> str:
    # Signed by hand: PyJWT warns (an error here) about a 52-byte key for HS512.
    signing_input = _b64(b'{"alg":"HS512","typ":"JWT"}') + "." + _b64(orjson.dumps(_claims(settings, uid)))
    digest = hmac.new(settings.jwt_secret.encode(), signing_input.encode(), hashlib.sha512).digest()
    return f"{signing_input}.{_b64(digest)}"


def _tampered(settings: Settings, uid: int) -> str:
    header, _, signature = _sign(settings, _claims(settings, uid)).split(".")
    payload = _b64(orjson.dumps(_claims(settings, uid, role="admin")))
    return f"{header}.{payload}.{signature}"


Variant = Callable[[Settings, int, str], str]
# Each builds the Authorization header value from (settings, user id, the user's refresh token).
VARIANTS: dict[str, Variant] = {
    "no header": lambda s, u, r: "",
    "basic scheme": lambda s, u, r: "Basic dXNlcjpwYXNz",
    "bearer without token": lambda s, u, r: "Bearer ",
    "token without bearer": lambda s, u, r: _sign(s, _claims(s, u)),
    "garbage": lambda s, u, r: "Bearer not-a-jwt",
    "three garbage parts": lambda s, u, r: "Bearer abc.def.ghi",
    "alg none": lambda s, u, r: "Bearer " + _alg_none(s, u),
    "wrong key": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u), key="another-secret-that-is-long-enough-0123456789"),
    "other algorithm same key": lambda s, u, r: "Bearer " + _hs512(s, u),
    "tampered payload": lambda s, u, r: "Bearer " + _tampered(s, u),
    "expired": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, iat=int(time.time()) - 1000, nbf=int(time.time()) - 1000, exp=int(time.time()) - 10)),
    "not yet valid": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, nbf=int(time.time()) + 600)),
    "wrong issuer": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, iss="someone-else")),
    "wrong audience": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, aud="another-api")),
    "refresh type": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, type="refresh")),
    "no type": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, type=_DROP)),
    "no exp": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, exp=_DROP)),
    "no jti": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, jti=_DROP)),
    "no aud": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, aud=_DROP)),
    "string userId": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, userId=str(u))),
    "sub of another user": lambda s, u, r: "Bearer " + _sign(s, _claims(s, u, sub=str(u + 1))),
    "opaque refresh token as bearer": lambda s, u, r: "Bearer " + r,
    "unknown user": lambda s, u, r: "Bearer " + issue_access_token(s, user_id=u + 10_000, email="x@example.com", role="user"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_bad_tokens_get_401(api, settings: Settings, variant: str) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    uid = data["user"]["id"]
    good = await api.get("/api/auth/me", headers=bearer(data["accessToken"]))
    assert good.status == 200
    value = VARIANTS[variant](settings, uid, data["refreshToken"])
    resp = await api.get("/api/auth/me", headers={"Authorization": value} if value else {})
    body = await resp.json()
    assert resp.status == 401, (variant, body)
    assert body["success"] is False and body["code"] == "unauthorized"
    assert "data" not in body


async def test_access_token_expires(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime.now(dt.UTC)
    with freeze_time(start, real_asyncio=True) as frozen:
        data = await register(api)
        headers = bearer(data["accessToken"])
        assert (await api.get("/api/auth/me", headers=headers)).status == 200
        frozen.tick(settings.access_token_ttl - 1)
        assert (await api.get("/api/auth/me", headers=headers)).status == 200
        frozen.tick(2)
        assert (await api.get("/api/auth/me", headers=headers)).status == 401
        # A refresh still gives a fresh access token.
        resp = await api.post("/api/auth/refresh", json={"refreshToken": data["refreshToken"]})
        assert resp.status == 200
        fresh = (await resp.json())["data"]
        assert fresh["expiresIn"] == settings.access_token_ttl
        assert (await api.get("/api/auth/me", headers=bearer(fresh["accessToken"]))).status == 200


async def test_claims_of_an_issued_token(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    claims = jwt.decode(data["accessToken"], settings.jwt_secret, algorithms=["HS256"],
                        audience=settings.jwt_audience)
    assert claims["sub"] == str(data["user"]["id"]) and claims["userId"] == data["user"]["id"]
    assert claims["type"] == "access" and claims["role"] == "user"
    assert claims["email"] == data["user"]["email"] and claims["iss"] == settings.jwt_issuer
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl and claims["jti"]


def test_verified_tokens_expire_and_stay_bounded(settings: Settings) -> None:
    from common.security.tokens import InvalidToken, VerifiedTokens

    cache = VerifiedTokens(size=2)
    with freeze_time(dt.datetime.now(dt.UTC)) as frozen:
        token = issue_access_token(settings, user_id=1, email="a@example.com", role="user")
        assert cache.decode(settings, token).user_id == 1
        assert cache.decode(settings, token).user_id == 1  # from the cache
        other = settings.model_copy(update={"jwt_secret": "another-secret-that-is-long-enough-0123456789"})
        with pytest.raises(InvalidToken):
            cache.decode(other, token)
        for uid in (2, 3):
            cache.decode(settings, issue_access_token(settings, user_id=uid, email="a@example.com", role="user"))
        assert len(cache._claims) == 2
        frozen.tick(settings.access_token_ttl)
        with pytest.raises(InvalidToken):
            cache.decode(settings, token)
        assert cache.decode(settings, issue_access_token(settings, user_id=4, email="b@example.com", role="user"))
