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
