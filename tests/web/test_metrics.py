"""``GET /metrics``: HTTP by route template, queues, outbox, breakers, Celery tasks, ledger check."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import orjson
import pytest
import redis
from freezegun import freeze_time
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from common import breakers
from common.config import Settings
from common.events import emit
from common.metrics import TASK_BUCKETS, record_ledger_check, record_task
from common.taskqueue import enqueue


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_requests_are_counted_by_route_template_never_raw_path(client) -> None:  # type: ignore[no-untyped-def]
    before = await scrape(client)
    key = {"method": "GET", "route": "/api/offers/{id}", "status": "404"}
    start = value(before, "savebucks_http_requests_total", **key) or 0
    for offer_id in (123456, 654321):
        assert (await client.get(f"/api/offers/{offer_id}")).status == 404
    assert (await client.get("/no/such/path/987")).status == 404
    text = await (await client.get("/metrics")).text()
    assert "123456" not in text and "/no/such/path" not in text
    after = await scrape(client)
    assert value(after, "savebucks_http_requests_total", **key) == start + 2
    assert value(after, "savebucks_http_requests_total", method="GET", route="unmatched",
                 status="404") >= 1
    count = value(after, "savebucks_http_request_duration_seconds_count",
                  method="GET", route="/api/offers/{id}")
    assert count is not None and count >= 2


async def test_queue_depths_and_unacked(client) -> None:  # type: ignore[no-untyped-def]
    enqueue("payouts.nobody_consumes_this")
    enqueue("payouts.nobody_consumes_this")
    enqueue("analytics.nor_this")
    samples = await scrape(client)
    assert value(samples, "savebucks_celery_queue_length", queue="payouts") == 2
    assert value(samples, "savebucks_celery_queue_length", queue="analytics") == 1
    assert value(samples, "savebucks_celery_queue_length", queue="sales") == 0
    assert value(samples, "savebucks_celery_unacked") == 0
    assert value(samples, "savebucks_metrics_source_up", source="queues") == 1


@pytest.fixture
async def uncached_client(aiohttp_client, settings: Settings, bound_db):  # type: ignore[no-untyped-def]
    """For tests that change a cached figure between two scrapes."""
    from web.app import create_app

    return await aiohttp_client(create_app(settings.model_copy(update={"metrics_cache_seconds": 0}),
                                           db=bound_db))


async def test_outbox_backlog_counts_unpublished_events(uncached_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = uncached_client
    assert value(await scrape(client), "savebucks_outbox_backlog") == 0
    for n in range(3):
        emit(session, event="leaderboard:updated", data={"n": n})
    session.flush()
    samples = await scrape(client)
    assert value(samples, "savebucks_outbox_backlog") == 3
    assert value(samples, "savebucks_outbox_oldest_unpublished_seconds") >= 0


async def test_breaker_states(client, redis_sync: redis.Redis, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    breakers.REGISTERED.add("metrics_test_provider")
    try:
        redis_sync.set(breakers.state_key(settings, "metrics_test_provider"), "open")
        samples = await scrape(client)
    finally:
        breakers.REGISTERED.discard("metrics_test_provider")
    name = "savebucks_circuit_breaker_state"
    assert value(samples, name, breaker="metrics_test_provider", state="open") == 1
    assert value(samples, name, breaker="metrics_test_provider", state="closed") == 0


async def test_task_figures_recorded_in_redis(client, redis_sync: redis.Redis, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    record_task(redis_sync, settings, task="sales.approve_sale", outcome="success", seconds=0.03)
    record_task(redis_sync, settings, task="sales.approve_sale", outcome="success", seconds=7.0)
    record_task(redis_sync, settings, task="sales.approve_sale", outcome="failure", seconds=0.2)
    samples = await scrape(client)
    task = {"task": "sales.approve_sale"}
    assert value(samples, "savebucks_celery_tasks_total", outcome="success", **task) == 2
    assert value(samples, "savebucks_celery_tasks_total", outcome="failure", **task) == 1
    assert value(samples, "savebucks_celery_tasks_total", outcome="retry", **task) == 0
    name = "savebucks_celery_task_duration_seconds"
    assert value(samples, f"{name}_count", **task) == 3
    assert abs(value(samples, f"{name}_sum", **task) - 7.23) < 1e-9
    assert value(samples, f"{name}_bucket", le="0.05", **task) == 1
    assert value(samples, f"{name}_bucket", le="0.5", **task) == 2
    assert value(samples, f"{name}_bucket", le=str(TASK_BUCKETS[-1]), **task) == 3
    assert value(samples, f"{name}_bucket", le="+Inf", **task) == 3


async def test_ledger_check_result(client, redis_sync: redis.Redis, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    samples = await scrape(client)
    assert value(samples, "savebucks_ledger_check_ok") is None  # never ran: no figure, no alarm
    assert value(samples, "savebucks_metrics_source_up", source="ledger") == 1
    record_ledger_check(redis_sync, settings, problems=2, checked_at=1_700_000_000.0)
    samples = await scrape(client)
    assert value(samples, "savebucks_ledger_check_ok") == 0
    assert value(samples, "savebucks_ledger_check_problems") == 2
    assert value(samples, "savebucks_ledger_check_timestamp_seconds") == 1_700_000_000.0
    record_ledger_check(redis_sync, settings, problems=0)
    assert value(await scrape(client), "savebucks_ledger_check_ok") == 1


async def test_a_failing_source_drops_its_family_not_the_scrape(client, redis_sync: redis.Redis, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    redis_sync.set(f"{settings.redis_prefix}:metrics:ledger_check", b"not json")
    samples = await scrape(client)
    assert value(samples, "savebucks_metrics_source_up", source="ledger") == 0
    assert value(samples, "savebucks_metrics_source_up", source="queues") == 1
    assert value(samples, "savebucks_ledger_check_ok") is None


async def test_events_published_after_a_web_commit_are_counted(client) -> None:  # type: ignore[no-untyped-def]
    from web.keys import DB

    def write(session: Session) -> None:
        emit(session, event="leaderboard:updated", data={})
        emit(session, event="leaderboard:updated", data={})

    before = value(await scrape(client), "savebucks_events_published_total") or 0
    await client.app[DB].run(write)
    assert value(await scrape(client), "savebucks_events_published_total") == before + 2


async def test_open_websockets_and_their_events_are_counted(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from common.security.tokens import issue_access_token
    from tests.fixtures.factories import make_user
    from web.keys import DB

    assert value(await scrape(client), "savebucks_ws_connections") == 0
    user = make_user(session)
    token = issue_access_token(settings, user_id=user.id, email=user.email, role=user.role)
    ws = await client.ws_connect("/ws")
    try:
        await ws.send_json({"event": "auth", "data": {"token": token}})
        ready = await ws.receive_json(timeout=5)
        assert ready["event"] == "ready"
        samples = await scrape(client)
        assert value(samples, "savebucks_ws_connections") == 1
        assert value(samples, "savebucks_ws_users") == 1
        received = value(samples, "savebucks_events_received_total", target="user") or 0
        delivered = value(samples, "savebucks_events_delivered_total", event="payment:status") or 0

        def ping(session: Session) -> None:
            emit(session, event="payment:status", data={}, user_id=user.id)

        await client.app[DB].run(ping)
        frame = await ws.receive_json(timeout=5)
        assert frame["event"] == "payment:status"
        samples = await scrape(client)
        assert value(samples, "savebucks_events_received_total", target="user") == received + 1
        assert value(samples, "savebucks_events_delivered_total", event="payment:status") == delivered + 1
    finally:
        await ws.close()


async def test_a_scrape_storm_costs_one_database_and_broker_round_per_ttl(aiohttp_client, settings: Settings, bound_db, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from web import metrics
    from web.app import create_app

    calls = {"outbox": 0, "queues": 0}

    def counted(name: str, real: Any) -> Any:
        async def wrapper(app: Any) -> Any:
            calls[name] += 1
            return await real(app)
        return wrapper

    monkeypatch.setattr(metrics, "_outbox", counted("outbox", metrics._outbox))
    monkeypatch.setattr(metrics, "_queue_depths", counted("queues", metrics._queue_depths))
    client = await aiohttp_client(create_app(
        settings.model_copy(update={"metrics_cache_seconds": 10}), db=bound_db))
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        storm = await asyncio.gather(*(client.get("/metrics") for _ in range(30)))
        assert {r.status for r in storm} == {200}
        assert "savebucks_outbox_backlog" in await storm[-1].text()
        assert calls == {"outbox": 1, "queues": 1}
        frozen.tick(11)
        await scrape(client)
        assert calls == {"outbox": 2, "queues": 2}


async def test_metrics_token_guards_the_scrape(aiohttp_client, settings: Settings, bound_db, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from web.app import create_app
    from web.keys import SETTINGS

    secret = "scrape-secret-0123456789abcdef"
    client = await aiohttp_client(create_app(settings.model_copy(update={"metrics_token": secret}),
                                             db=bound_db))
    caplog.set_level(logging.DEBUG)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": secret},
                    {"Authorization": f"Bearer {secret}x"}, {"Authorization": "Bearer caf\u00e9"}):
        resp = await client.get("/metrics", headers=headers)
        body = await resp.json()
        assert resp.status == 401 and body["success"] is False and body["code"] == "unauthorized"
        assert secret not in await resp.text()
    ok = await client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status == 200 and "savebucks_http_requests_total" in await ok.text()
    assert secret not in caplog.text
    assert secret not in repr(client.app[SETTINGS])


@pytest.mark.committed
def test_check_ledger_records_its_result(committed, redis_sync: redis.Redis, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from common.cli import main
    from common.metrics import ledger_check_key

    assert main(["check-ledger"]) == 0
    stored = orjson.loads(redis_sync.get(ledger_check_key(settings)))
    assert stored["ok"] is True and stored["problems"] == 0


async def test_queue_lengths_are_read_from_a_rabbitmq_broker(aiohttp_client, settings: Settings, bound_db) -> None:  # type: ignore[no-untyped-def]
    from common.taskqueue import QUEUES
    from web.app import create_app

    amqp = settings.model_copy(update={"celery_broker_url": "amqp://guest:guest@127.0.0.1:5672//"})
    client = await aiohttp_client(create_app(amqp, db=bound_db))
    figures = await scrape(client)
    lengths = {dict(labels)["queue"]: value for (name, labels), value in figures.items()
               if name == "savebucks_celery_queue_length"}
    assert set(lengths) == set(QUEUES)
    assert all(value >= 0 for value in lengths.values())
