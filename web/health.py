"""``GET /health``: real, timed checks of what the web needs (API.md section 9)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import redis.asyncio as aredis
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from common.breakers import breaker_states
from web.envelope import dumps, now_iso
from web.keys import DB, HEALTH, REDIS, SETTINGS, uptime
from web.openapi import describe

CHECK_TIMEOUT = 2.0
Probe = Callable[[], Awaitable[Any]]


class HealthChecks:
    """The checks, with the broker's client kept open between calls."""

    def __init__(self, broker: aredis.Redis | None) -> None:
        self.broker = broker

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.aclose()


async def _timed(check: Probe) -> tuple[dict[str, Any], Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT)
        status = "ok"
    except Exception as exc:  # a failing dependency is reported, never raised
        detail = None
        status = "error"
        error = type(exc).__name__
    result: dict[str, Any] = {
        "status": status,
        "responseTime": round((time.perf_counter() - started) * 1000, 2),
    }
    if status == "error":
        result["error"] = error
    return result, detail


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "error"]
    responseTime: float  # noqa: N815  (milliseconds; the API's names)
    error: str | None = None  # the exception's class name when ``status`` is error
    breakers: dict[str, Literal["closed", "open", "half_open"]] | None = None


class Checks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database: CheckResult
    redis: CheckResult
    broker: CheckResult
    external_apis: CheckResult


class HealthReport(BaseModel):
    """The body of ``GET /health`` (no envelope)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "error"]
    timestamp: dt.datetime
    uptime: float  # seconds since this process started
    checks: Checks


@describe(
    "Health of this web instance and what it needs",
    description="No envelope. 200 when every check is ok, else 503 with the same body.",
    tags=["operations"], response=HealthReport, envelope=False,
    statuses={503: "A check failed"},
)
async def health(request: web.Request) -> web.Response:
    app = request.app
    db, redis = app[DB], app[REDIS]
    broker = app[HEALTH].broker or redis

    async def external_apis() -> dict[str, str]:
        states = await breaker_states(redis, app[SETTINGS])
        if any(state == "open" for state in states.values()):
            raise RuntimeError("circuit open")
        return states

    (database, _), (cache, _), (queue, _), (external, states) = await asyncio.gather(
        _timed(db.ping), _timed(redis.ping), _timed(broker.ping), _timed(external_apis)
    )
    if states:
        external["breakers"] = states
    checks = {"database": database, "redis": cache, "broker": queue, "external_apis": external}
    healthy = all(c["status"] == "ok" for c in checks.values())
    body = {
        "status": "ok" if healthy else "error",
        "timestamp": now_iso(),
        "uptime": uptime(app),
        "checks": checks,
    }
    return web.Response(
        body=dumps(body), status=200 if healthy else 503, content_type="application/json"
    )



class LiveReport(BaseModel):
    """The body of ``GET /health/live`` (no envelope)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]


_LIVE = dumps({"status": "ok"})


@describe(
    "Liveness: this process answers",
    description="No envelope, no dependency checked: 200 whenever the process serves requests. "
    "For a supervisor that restarts dead processes; a load balancer routes on GET /health.",
    tags=["operations"], response=LiveReport, envelope=False,
)
async def live(request: web.Request) -> web.Response:
    return web.Response(body=_LIVE, content_type="application/json")
