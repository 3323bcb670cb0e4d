from __future__ import annotations

from common.config import load_settings
from web.app import create_app


async def test_health_checks_every_dependency(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["uptime"] >= 0
    assert set(body["checks"]) == {"database", "redis", "broker", "external_apis"}
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["responseTime"] >= 0


async def test_health_is_503_when_redis_is_unreachable(aiohttp_client, settings, bound_db) -> None:  # type: ignore[no-untyped-def]
    # A port nothing listens on: connection refused at once.
    broken = load_settings(
        {**{k.upper(): str(v) for k, v in settings.model_dump().items() if isinstance(v, str | int | bool)},
         "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    client = await aiohttp_client(create_app(broken, db=bound_db))
    resp = await client.get("/health")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "error"
    assert body["checks"]["redis"]["status"] == "error"
    assert body["checks"]["broker"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"


def _settings(settings, **env: str):  # type: ignore[no-untyped-def]
    return load_settings(
        {**{k.upper(): str(v) for k, v in settings.model_dump().items() if isinstance(v, str | int | bool | float)},
         **env}
    )


async def test_liveness_answers_with_every_dependency_down(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    broken = _settings(settings, REDIS_URL="redis://127.0.0.1:1/0",
                       DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = await aiohttp_client(create_app(broken))
    resp = await client.get("/health/live")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert (await client.get("/health")).status == 503


async def test_concurrent_health_calls_share_one_probe_per_dependency(
    aiohttp_client, settings, bound_db, monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import asyncio

    from web import health

    calls: list[object] = []
    timed = health._timed

    async def counted(probe):  # type: ignore[no-untyped-def]
        calls.append(probe)
        await asyncio.sleep(0.05)  # a probe that takes a while: the others arrive meanwhile
        return await timed(probe)

    monkeypatch.setattr(health, "_timed", counted)
    client = await aiohttp_client(create_app(_settings(settings, HEALTH_CACHE_SECONDS="30"), db=bound_db))
    answers = await asyncio.gather(*(client.get("/health") for _ in range(64)))
    assert {r.status for r in answers} == {200}
    assert len(calls) == 4  # database, redis, broker, external_apis: once each
    bodies = [await r.json() for r in answers]
    assert len({b["checks"]["database"]["responseTime"] for b in bodies}) == 1
    await client.get("/health")
    assert len(calls) == 4  # still within the period


async def test_without_a_period_every_call_probes(aiohttp_client, settings, bound_db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from web import health

    calls: list[object] = []
    timed = health._timed

    async def counted(probe):  # type: ignore[no-untyped-def]
        calls.append(probe)
        return await timed(probe)

    monkeypatch.setattr(health, "_timed", counted)
    client = await aiohttp_client(create_app(_settings(settings, HEALTH_CACHE_SECONDS="0"), db=bound_db))
    for _ in range(3):
        assert (await client.get("/health")).status == 200
    assert len(calls) == 12


async def test_an_open_breaker_is_reported_with_every_state(client, aredis_client, settings) -> None:  # type: ignore[no-untyped-def]
    import common.payouts.breaker  # noqa: F401  (registers the payout provider's breaker)
    from common.breakers import REGISTERED, state_key

    assert REGISTERED
    for name in REGISTERED:
        await aredis_client.set(state_key(settings, name), "open")
    body = await (await client.get("/health")).json()
    assert body["checks"]["external_apis"] == {
        "status": "error", "error": "BreakerOpen", "breakers": dict.fromkeys(REGISTERED, "open"),
        "responseTime": body["checks"]["external_apis"]["responseTime"]}
    assert body["status"] == "error"


async def test_every_check_matches_its_schema(client) -> None:  # type: ignore[no-untyped-def]
    from web.health import HealthReport

    body = await (await client.get("/health")).json()
    HealthReport.model_validate(body)
    assert "breakers" not in body["checks"]["redis"]


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


async def test_a_rabbitmq_broker_is_checked_over_amqp(aiohttp_client, settings, bound_db) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(_settings(settings, CELERY_BROKER_URL=RABBITMQ), db=bound_db))
    body = await (await client.get("/health")).json()
    assert body["checks"]["broker"]["status"] == "ok", body


async def test_an_unreachable_rabbitmq_broker_is_a_503_within_the_check_time(aiohttp_client, settings, bound_db) -> None:  # type: ignore[no-untyped-def]
    import time

    from web.health import CHECK_TIMEOUT

    broken = _settings(settings, CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
    client = await aiohttp_client(create_app(broken, db=bound_db))
    started = time.monotonic()
    resp = await client.get("/health")
    assert time.monotonic() - started < CHECK_TIMEOUT + 1
    body = await resp.json()
    assert resp.status == 503
    assert body["checks"]["broker"]["status"] == "error"
    assert body["checks"]["redis"]["status"] == "ok"
