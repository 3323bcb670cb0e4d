"""``GET /health``: real, timed checks of what the web needs (docs/api.md "Operations")."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from common.breakers import breaker_states
from web.broker import Broker
from web.envelope import dumps, now_iso
from web.keys import DB, HEALTH, REDIS, SETTINGS, uptime
from web.metrics import CachedRead
from web.openapi import describe

CHECK_TIMEOUT = 2.0
CHECKS = ("database", "redis", "broker", "external_apis")
Probe = Callable[[], Awaitable[Any]]


class HealthChecks:
    """The checks, with the broker (``web.broker``: Redis or RabbitMQ), and each check's last
    result kept ``ttl`` seconds (``HEALTH_CACHE_SECONDS``): however many load balancers and
    probes ask at once, each dependency is probed at most once per period, by one caller, and
    the others get that answer (``CachedRead``: at most one probe in flight per dependency)."""

    def __init__(self, broker: Broker, ttl: float = 0.0) -> None:
        self.broker = broker
        self.cached = {name: CachedRead(ttl) for name in CHECKS}

    async def check(self, name: str, probe: Probe) -> dict[str, Any]:
        result: dict[str, Any] = await self.cached[name].get(lambda: _timed(probe))
        return result

    def fresh(self) -> list[dict[str, Any]] | None:
        """Every check's result when all are within their period (no task, no await)."""
        if all(cached.fresh() for cached in self.cached.values()):
            return [self.cached[name].value for name in CHECKS]
        return None

    async def close(self) -> None:
        await self.broker.close()


async def _timed(check: Probe) -> dict[str, Any]:
    """``{status, responseTime}`` of one probe, with ``error`` (the exception's class) when it
    failed; a probe that returns breaker states adds them as ``breakers``."""
    started = time.perf_counter()
    result: dict[str, Any] = {"status": "ok"}
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001  (a failing dependency is reported, never raised)
        result = {"status": "error", "error": type(exc).__name__}
        detail = getattr(exc, "breakers", None)
    result["responseTime"] = round((time.perf_counter() - started) * 1000, 2)
    if isinstance(detail, dict) and detail:  # the breaker states (other probes answer True)
        result["breakers"] = detail
    return result


class BreakerOpen(RuntimeError):
    def __init__(self, breakers: dict[str, str]) -> None:
        super().__init__("circuit open")
        self.breakers = breakers


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "error"]
    responseTime: float
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
    db, redis, checks = app[DB], app[REDIS], app[HEALTH]

    async def external_apis() -> dict[str, str]:
        states = await breaker_states(redis, app[SETTINGS])
        if any(state == "open" for state in states.values()):
            raise BreakerOpen(states)
        return states

    results = checks.fresh()
    if results is None:
        probes: dict[str, Probe] = {"database": db.ping, "redis": redis.ping,
                                    "broker": checks.broker.ping, "external_apis": external_apis}
        results = await asyncio.gather(*(checks.check(name, probes[name]) for name in CHECKS))
    healthy = all(r["status"] == "ok" for r in results)
    body = {
        "status": "ok" if healthy else "error",
        "timestamp": now_iso(),
        "uptime": uptime(app),
        "checks": dict(zip(CHECKS, results, strict=True)),
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
