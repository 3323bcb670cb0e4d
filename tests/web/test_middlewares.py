"""The envelope, trace ids, error statuses, headers: what every route inherits."""

from __future__ import annotations

import io
import re

import psycopg
import psycopg_pool
import pytest
import redis
import sqlalchemy.exc
from aiohttp import web

from common.errors import Conflict
from web.envelope import ok
from web.routes import API_PREFIXES
from web.schemas import Model
from web.validation import parse_body

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Echo(Model):
    name: str
    amount: int


async def _echo(request: web.Request) -> web.Response:
    body = await parse_body(request, Echo)
    return ok(body.model_dump())


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("SELECT secret FROM vault -- password=hunter2")


async def _conflict(request: web.Request) -> web.Response:
    raise Conflict("Already there", errors=["email: taken"])


async def _big(request: web.Request) -> web.Response:
    return ok({"items": ["x" * 50] * 200})


async def make_client(aiohttp_client, settings, bound_db):  # type: ignore[no-untyped-def]
    from web.app import create_app

    app = create_app(settings, db=bound_db)
    for prefix in API_PREFIXES:
        app.router.add_post(prefix + "/_test/echo", _echo)
        app.router.add_get(prefix + "/_test/boom", _boom)
        app.router.add_get(prefix + "/_test/conflict", _conflict)
        app.router.add_get(prefix + "/_test/big", _big)
    return await aiohttp_client(app)


async def _envelope(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["X-Trace-ID"]
    body = await resp.json()
    assert ISO_Z.match(body["timestamp"])
    return body


async def test_success_envelope_on_both_prefixes(aiohttp_client, settings, bound_db) -> None:
    client = await make_client(aiohttp_client, settings, bound_db)
    for prefix in API_PREFIXES:
        resp = await client.post(f"{prefix}/_test/echo", json={"name": "a", "amount": 3, "role": "admin"})
        body = await _envelope(resp, 200)
        assert body["success"] is True and body["data"] == {"name": "a", "amount": 3}


async def test_error_statuses_answer_the_envelope(aiohttp_client, settings, bound_db) -> None:
    client = await make_client(aiohttp_client, settings, bound_db)
    cases = [
        (client.get("/api/nothing-here"), 404),
        (client.delete("/api/_test/echo"), 405),
        (client.post("/api/_test/echo", data=b"name=a", headers={"Content-Type": "text/plain"}), 415),
        (client.post("/api/_test/echo", data=b"{not json", headers={"Content-Type": "application/json"}), 400),
        (client.post("/api/_test/echo", data=b'{"amount": NaN}', headers={"Content-Type": "application/json"}), 400),
        (client.post("/api/_test/echo", data=b"[1]", headers={"Content-Type": "application/json"}), 400),
        (client.post("/api/_test/echo", data=b"[" * 5000, headers={"Content-Type": "application/json"}), 400),
        (client.post("/api/_test/echo", json={"name": "a"}), 422),
        (client.post("/api/_test/echo", json={"name": "a", "amount": "lots"}), 422),
        (client.post("/api/_test/echo", data=io.BytesIO(b"x" * (settings.max_body_bytes + 10)), headers={"Content-Type": "application/json"}), 413),
        (client.get("/api/_test/conflict"), 409),
    ]
    for request, status in cases:
        body = await _envelope(await request, status)
        assert body["success"] is False and body["message"]
    body = await _envelope(await client.post("/api/_test/echo", json={"name": "a"}), 422)
    assert any(e.startswith("amount:") for e in body["errors"])


async def test_a_500_leaks_nothing_and_carries_the_trace_id(aiohttp_client, settings, bound_db, caplog) -> None:
    client = await make_client(aiohttp_client, settings, bound_db)
    resp = await client.get("/api/_test/boom", headers={"X-Trace-ID": "trace-abc-123"})
    body = await _envelope(resp, 500)
    text = str(body)
    assert "hunter2" not in text and "SELECT" not in text and "Traceback" not in text
    assert body["traceId"] == "trace-abc-123" == resp.headers["X-Trace-ID"]
    logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged and logged[0].exc_info is not None


async def test_trace_id_is_reused_when_sane_and_replaced_otherwise(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/health", headers={"X-Trace-ID": "client-trace-0001"})
    assert resp.headers["X-Trace-ID"] == "client-trace-0001"
    for insane in ["x", "a" * 200, "bad id with spaces", "semi;colon;id0000"]:
        resp = await client.get("/health", headers={"X-Trace-ID": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Trace-ID"])


async def test_security_headers_cors_and_gzip(aiohttp_client, settings, bound_db) -> None:
    client = await make_client(aiohttp_client, settings, bound_db)
    origin = settings.allowed_origins[0]
    resp = await client.get("/api/nope", headers={"Origin": origin})
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Access-Control-Allow-Origin"] == origin
    resp = await client.get("/api/nope", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    pre = await client.options(
        "/api/_test/echo",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert pre.status == 204 and "POST" in pre.headers["Access-Control-Allow-Methods"]
    resp = await client.get("/api/_test/big", headers={"Accept-Encoding": "gzip"})
    assert resp.headers.get("Content-Encoding") == "gzip"
    assert len((await resp.json())["data"]["items"]) == 200


_DOWN = {
    "pg": lambda: psycopg.OperationalError(
        "connection to server at 10.1.2.3, port 5432 failed: password=hunter2"),
    "pool": lambda: psycopg_pool.PoolTimeout("couldn't get a connection after 1.00 sec"),
    "sa": lambda: sqlalchemy.exc.OperationalError(
        "SELECT secret FROM vault", {}, psycopg.OperationalError("server closed the connection")),
    "sa-pool": lambda: sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 5 reached"),
    "redis": lambda: redis.ConnectionError("Error 111 connecting to 10.1.2.3:6379."),
    "redis-timeout": lambda: redis.TimeoutError("Timeout reading from 10.1.2.3:6379"),
}


@pytest.mark.parametrize("kind", sorted(_DOWN))
async def test_a_dependency_that_is_down_answers_503_naming_nothing(
    aiohttp_client, settings, bound_db, caplog, kind: str,  # type: ignore[no-untyped-def]
) -> None:
    from web.app import create_app

    async def down(request: web.Request) -> web.Response:
        raise _DOWN[kind]()

    app = create_app(settings, db=bound_db)
    app.router.add_get("/api/_test/down", down)
    client = await aiohttp_client(app)
    resp = await client.get("/api/_test/down")
    body = await _envelope(resp, 503)
    assert body["success"] is False and body["code"] == "unavailable"
    assert resp.headers["Retry-After"] == "2"
    text = await resp.text()
    for secret in ("10.1.2.3", "hunter2", "SELECT", "QueuePool", "5432", "6379"):
        assert secret not in text
    warning = next(r for r in caplog.records if r.getMessage() == "dependency unavailable")
    assert warning.dependency == ("redis" if kind.startswith("redis") else "database")
