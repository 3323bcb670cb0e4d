"""Rate limits: per email and per IP on login, per IP on register; 429 with Retry-After and the
RateLimit headers; open again once the window has passed (time moved by freezegun)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from freezegun import freeze_time

from common.config import Settings
from common.errors import RateLimited
from common.ratelimit import Check, Limiter
from tests.fixtures.auth import (
    PASSWORD,
    make_client,  # noqa: F401
    new_email,
    register,
)
from tests.fixtures.redis_peers import silent_redis


async def _login(client, email: str, password: str = "wrong password"):  # type: ignore[no-untyped-def]
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def test_brute_force_on_one_email_is_stopped_then_allowed_again(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_login_email="5/minute")
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        email = (await register(client))["user"]["email"]
        for _ in range(5):
            assert (await _login(client, email)).status == 401
        resp = await _login(client, email.upper(), PASSWORD)  # the right password, but too late
        body = await resp.json()
        assert resp.status == 429 and body["code"] == "rate_limited"
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= 60
        assert resp.headers["RateLimit-Limit"] == "5" and resp.headers["RateLimit-Remaining"] == "0"
        # Another email from the same address is not affected by this email's limit.
        assert (await _login(client, new_email())).status == 401
        frozen.tick(retry + 1)
        assert (await _login(client, email, PASSWORD)).status == 200


async def test_login_per_ip_limit(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_login="3/minute")
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        for _ in range(3):
            assert (await _login(client, new_email())).status == 401
        resp = await _login(client, new_email())
        assert resp.status == 429 and "Retry-After" in resp.headers
        frozen.tick(61)
        assert (await _login(client, new_email())).status == 401


async def test_register_per_ip_limit(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_register="2/minute")
    for _ in range(2):
        await register(client)
    resp = await client.post("/api/auth/register", json={"email": new_email(), "password": PASSWORD, "name": "x"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


async def test_limiter_keys_use_the_prefix_and_clear(settings: Settings, redis_sync) -> None:  # type: ignore[no-untyped-def]
    limiter = Limiter.from_settings(settings)
    try:
        await limiter.hit("chat:user", "1/minute", 7)
        try:
            await limiter.hit("chat:user", "1/minute", 7)
            raise AssertionError("the second hit should be limited")
        except RateLimited as exc:
            assert exc.limit == 1 and 1 <= exc.retry_after <= 60
        keys = [k.decode() for k in redis_sync.keys("*")]
        assert keys and all(k.startswith(f"{settings.redis_prefix}:ratelimit:") for k in keys)
        await limiter.clear("chat:user", "1/minute", 7)
        await limiter.hit("chat:user", "1/minute", 7)
    finally:
        await limiter.close()


async def test_limiter_fails_open_without_redis(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    working = Limiter.from_settings(settings)
    broken = Limiter.from_settings(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        await working.hit("login:ip", "1/minute", "fails-open")
        with pytest.raises(RateLimited):  # the same limit, counted: the second hit is refused
            await working.hit("login:ip", "1/minute", "fails-open")
        for _ in range(3):  # without Redis every hit passes, and says so in the log
            assert await broken.hit("login:ip", "1/minute", "fails-open") is None
    finally:
        await working.close()
        await broken.close()
    unavailable = [r for r in caplog.records if r.getMessage().startswith("rate limiter unavailable")]
    assert len(unavailable) == 3


async def _refresh(client, token: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/auth/refresh", json={"refreshToken": token})


async def test_refresh_per_ip_limit(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_refresh="3/minute")
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        for n in range(3):  # guessed tokens: each a 401, each counted
            assert (await _refresh(client, f"guess-{n}")).status == 401
        resp = await _refresh(client, "guess-3")
        body = await resp.json()
        assert resp.status == 429 and body["success"] is False and body["code"] == "rate_limited"
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        frozen.tick(61)
        assert (await _refresh(client, "guess-4")).status == 401


async def test_refresh_per_token_limit(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_refresh_token="2/minute")
    token = (await register(client))["refreshToken"]
    for _ in range(2):
        assert (await _refresh(client, token)).status == 200
    resp = await _refresh(client, token)
    assert resp.status == 429 and "Retry-After" in resp.headers
    # Another token from the same address is not held back by this token's limit.
    other = (await register(client))["refreshToken"]
    assert (await _refresh(client, other)).status == 200


async def test_hit_all_counts_in_order_up_to_the_spent_limit(settings: Settings) -> None:
    """Several limits of one request in one round trip, exactly as that many ``hit`` calls:
    those before the spent one are counted, the spent one and those after it are not."""
    limiter = Limiter.from_settings(settings)
    wide, narrow = Check("t:wide", "3/minute", ("x",)), Check("t:narrow", "1/minute", ("x",))
    calls = []
    script = limiter._script

    async def counted(**kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["keys"])
        return await script(**kwargs)

    limiter._script = counted
    try:
        with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True):
            await limiter.hit_all(wide, narrow)
            with pytest.raises(RateLimited) as spent:
                await limiter.hit_all(wide, narrow)  # wide counted (2 of 3), narrow spent
            assert spent.value.limit == 1 and 1 <= spent.value.retry_after <= 60
            await limiter.hit_all(wide)  # 3 of 3
            with pytest.raises(RateLimited) as spent:
                await limiter.hit_all(wide, narrow)
            assert spent.value.limit == 3
            assert len(calls) == 4 and all(len(keys) in (1, 2) for keys in calls)
    finally:
        await limiter.clear("t:wide", "3/minute", "x")
        await limiter.clear("t:narrow", "1/minute", "x")
        await limiter.close()


async def test_a_zero_limit_refuses_every_request(settings: Settings) -> None:
    limiter = Limiter.from_settings(settings)
    try:
        with pytest.raises(RateLimited) as spent:
            await limiter.hit("t:none", "0/minute", "x")
        assert spent.value.retry_after == 60
    finally:
        await limiter.close()


async def test_a_redis_that_never_answers_fails_open_after_the_timeout(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    """The call is bounded as a whole, the write and the read included: a Redis that takes the
    connection and then says nothing lets the request through, and the next call starts afresh."""
    async with silent_redis() as port:
        limiter = Limiter.from_settings(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"}))
        limiter.timeout = 0.2
        try:
            for _ in range(2):
                assert await asyncio.wait_for(limiter.hit("click:user", "1/minute", "silent"), 10) is None
        finally:
            await limiter.close()
    unavailable = [r for r in caplog.records if r.getMessage().startswith("rate limiter unavailable")]
    assert len(unavailable) == 2
