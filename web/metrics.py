"""``GET /metrics`` (Prometheus text) and the per-request observation the middleware makes.

The process's own objects (``common.metrics``: HTTP, WebSocket, events, plus prometheus-client's
process and GC collectors) are rendered from the default registry. The figures that live
elsewhere are read when scraped, concurrently and each with a timeout, so a slow dependency
leaves its family out rather than stalling the scrape: queue depths (broker), outbox backlog
(PostgreSQL), circuit breaker states, Celery task figures and the last ledger check (Redis).
The broker and database figures are kept ``METRICS_CACHE_SECONDS``, so a scrape storm costs
those two at most one round per period. With ``METRICS_TOKEN`` set, a scrape needs the token
(``web.metrics_auth``). See docs/operations.md for what each figure means.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from common.breakers import breaker_states
from common.metrics import (
    HTTP_BUCKETS,
    TASK_BUCKETS,
    TaskFigures,
    read_ledger_check,
    read_task_figures,
)
from common.models.outbox import OutboxEvent
from common.sql import compile_query
from common.taskqueue import QUEUES
from web.broker import UNACKED
from web.keys import CACHED, DB, HEALTH, HUB, REDIS, SETTINGS, SUBSCRIBER
from web.metrics_auth import check_metrics_token

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
READ_TIMEOUT = 2.0
UNMATCHED = "unmatched"
# Counting stops here: past it the figure is "at least this many" and the scrape stays cheap.
BACKLOG_CAP = 100_000

_o = OutboxEvent.__table__
_unpublished = (
    select(_o.c.created_at).where(_o.c.published_at.is_(None)).limit(BACKLOG_CAP).subquery()
)
_BACKLOG = compile_query(
    select(
        func.count().label("backlog"),
        func.coalesce(
            func.extract("epoch", func.now() - func.min(_unpublished.c.created_at)), 0
        ).label("age"),
    )
)
_BREAKER_STATES = ("closed", "half_open", "open")


def route_label(request: web.Request) -> str:
    """The route's template (``/api/offers/{id}``), never the raw path: bounded cardinality."""
    info = request.match_info
    route = info.route if info.http_exception is None else None
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else UNMATCHED


class RequestStats(Collector):
    """Requests by (method, route, status) and latency by (method, route), in plain dicts.

    Observed on the event loop's thread only, so no lock is needed; prometheus-client's labelled
    ``Counter``/``Histogram`` take a lock per series per call and cost about five times as much
    (bench/health.py, docs/operations.md). Rendered as ``savebucks_http_requests_total`` and
    ``savebucks_http_request_duration_seconds``. The keys are bounded by the route table.

    Each (method, route, status) has one entry holding its count and its (method, route)
    latency series, shared by that route's statuses: a request costs one lookup, with the
    status as the number it is (made text only when rendered).
    """

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, int], list[Any]] = {}  # [count, latency series]
        self.latency: dict[tuple[str, str], list[float]] = {}  # bucket counts..., sum

    @property
    def requests(self) -> dict[tuple[str, str, str], int]:
        return {(method, route, str(status)): entry[0]
                for (method, route, status), entry in list(self.seen.items())}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        entry = self.seen.get((method, route, status))
        if entry is None:
            entry = self.seen[(method, route, status)] = [0, self._series(method, route, status)]
        entry[0] += 1
        series = entry[1]
        if series is None:  # an upgraded socket (101): its "latency" would be its whole lifetime
            return
        series[bisect.bisect_left(HTTP_BUCKETS, seconds)] += 1
        series[-1] += seconds

    def _series(self, method: str, route: str, status: int) -> list[float] | None:
        if status == 101:
            return None
        series = self.latency.get((method, route))
        if series is None:
            series = self.latency[(method, route)] = [0.0] * (len(HTTP_BUCKETS) + 2)
        return series

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "savebucks_http_requests", "HTTP requests by method, route template and status",
            labels=["method", "route", "status"],
        )
        for labels, count in list(self.requests.items()):
            requests.add_metric(list(labels), count)
        yield requests
        latency = HistogramMetricFamily(
            "savebucks_http_request_duration_seconds",
            "Time to produce the response, by method and route template",
            labels=["method", "route"],
        )
        for route, series in list(self.latency.items()):
            cumulative: list[tuple[str, float]] = []
            running = 0.0
            bounds = (*map(str, HTTP_BUCKETS), "+Inf")
            for bound, observed in zip(bounds, series[:-1], strict=True):
                running += observed
                cumulative.append((bound, running))
            latency.add_metric(list(route), cumulative, series[-1])
        yield latency


REQUESTS = RequestStats()
REGISTRY.register(REQUESTS)


def observe_request(request: web.Request, status: int, seconds: float) -> None:
    REQUESTS.observe(request.method, route_label(request), status, seconds)


FAILED = object()


async def _bounded(what: str, coro: Awaitable[Any]) -> Any:
    try:
        return await asyncio.wait_for(coro, READ_TIMEOUT)
    except Exception as exc:  # noqa: BLE001  (a failing source drops its family; the scrape still answers)
        log.warning("metrics source failed", extra={"source": what, "error": type(exc).__name__})
        return FAILED


async def _queue_depths(app: web.Application) -> dict[str, int]:
    return await app[HEALTH].broker.queue_depths()


async def _outbox(app: web.Application) -> tuple[int, float]:
    row = await app[DB].fetch_one(_BACKLOG)
    return (int(row["backlog"]), float(row["age"])) if row else (0, 0.0)


class CachedRead:
    """One source's last answer (a failure too), kept ``ttl`` seconds. Scrapes arriving while it
    is read wait for that read instead of starting their own: whatever the scrape rate, the
    source is asked once per ``ttl``."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.lock = asyncio.Lock()
        self.value: Any = FAILED
        self.read_at = -math.inf

    def fresh(self) -> bool:
        return time.monotonic() - self.read_at < self.ttl

    async def get(self, read: Callable[[], Awaitable[Any]]) -> Any:
        if self.fresh():  # the common case once read: no lock, no suspension
            return self.value
        async with self.lock:
            if time.monotonic() - self.read_at >= self.ttl:
                self.value = await read()
                self.read_at = time.monotonic()
            return self.value



async def _sources(app: web.Application) -> dict[str, Any]:
    redis, settings, cached = app[REDIS], app[SETTINGS], app[CACHED]
    names = ("queues", "outbox", "breakers", "tasks", "ledger")
    values = await asyncio.gather(
        cached["queues"].get(lambda: _bounded("queues", _queue_depths(app))),
        cached["outbox"].get(lambda: _bounded("outbox", _outbox(app))),
        _bounded("breakers", breaker_states(redis, settings)),
        _bounded("tasks", read_task_figures(redis, settings)),
        _bounded("ledger", read_ledger_check(redis, settings)),
    )
    return dict(zip(names, values, strict=True))


def _families(sources: dict[str, Any]) -> Iterator[Metric]:
    scrape = GaugeMetricFamily(
        "savebucks_metrics_source_up", "1 when the source answered this scrape", labels=["source"]
    )
    for name, value in sources.items():
        scrape.add_metric([name], 0 if value is FAILED else 1)
    yield scrape
    live = {name: value for name, value in sources.items() if value is not FAILED}
    if (queues := live.get("queues")) is not None:
        yield from _queue_families(queues)
    if (outbox := live.get("outbox")) is not None:
        yield GaugeMetricFamily(
            "savebucks_outbox_backlog", f"Unpublished outbox events (counted up to {BACKLOG_CAP})",
            value=outbox[0],
        )
        yield GaugeMetricFamily(
            "savebucks_outbox_oldest_unpublished_seconds",
            "Age of the oldest unpublished outbox event (0 when none)", value=outbox[1],
        )
    if (breakers := live.get("breakers")) is not None:
        yield _breaker_family(breakers)
    if (tasks := live.get("tasks")) is not None:
        yield from _task_families(tasks)
    if (ledger := live.get("ledger")) is not None:  # None: no ledger check has run yet
        yield from _ledger_families(ledger)


def _queue_families(depths: dict[str, int]) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "savebucks_celery_queue_length", "Messages waiting in each Celery queue", labels=["queue"]
    )
    for queue in QUEUES:
        family.add_metric([queue], depths[queue])
    yield family
    if UNACKED in depths:  # a Redis broker's figure (RabbitMQ's needs its management API)
        yield GaugeMetricFamily(
            "savebucks_celery_unacked", "Messages reserved by workers and not yet acknowledged",
            value=depths[UNACKED],
        )


def _breaker_family(states: dict[str, str]) -> Metric:
    family = GaugeMetricFamily(
        "savebucks_circuit_breaker_state",
        "1 for the state each circuit breaker is in", labels=["breaker", "state"],
    )
    for name, current in states.items():
        for state in _BREAKER_STATES:
            family.add_metric([name, state], 1 if current == state else 0)
    return family


def _task_families(tasks: dict[str, TaskFigures]) -> Iterator[Metric]:
    outcomes = CounterMetricFamily(
        "savebucks_celery_tasks", "Finished Celery task runs by task and outcome (cluster-wide)",
        labels=["task", "outcome"],
    )
    durations = HistogramMetricFamily(
        "savebucks_celery_task_duration_seconds",
        "Celery task run time by task (cluster-wide)", labels=["task"],
    )
    for name, figures in tasks.items():
        for outcome, count in figures.outcomes.items():
            outcomes.add_metric([name, outcome], count)
        cumulative, running = [], 0
        for bound, count in zip((*map(str, TASK_BUCKETS), "+Inf"), figures.buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        durations.add_metric([name], cumulative, figures.seconds_sum)
    yield outcomes
    yield durations


def _ledger_families(result: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "savebucks_ledger_check_ok", "1 when the last ledger check found every balance right",
        value=1 if result.get("ok") else 0,
    )
    yield GaugeMetricFamily(
        "savebucks_ledger_check_problems", "Problems the last ledger check listed",
        value=result.get("problems", 0),
    )
    yield GaugeMetricFamily(
        "savebucks_ledger_check_timestamp_seconds", "When the last ledger check ran (Unix time)",
        value=result.get("checkedAt", 0),
    )


class _Snapshot(Collector):
    def __init__(self, sources: dict[str, Any], app: web.Application) -> None:
        self.sources = sources
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield from _families(self.sources)
        yield from _hub_families(self.app)


def _hub_families(app: web.Application) -> Iterator[Metric]:
    """This instance's WebSocket hub, read from its own counts (no bookkeeping on the hot path)."""
    hub = app.get(HUB)
    if hub is None:
        return
    stats = hub.stats()
    yield GaugeMetricFamily("savebucks_ws_connections",
                            "Open authenticated WebSocket connections on this instance",
                            value=stats["sockets"])
    yield GaugeMetricFamily("savebucks_ws_users", "Users with at least one socket here",
                            value=stats["users"])
    yield GaugeMetricFamily("savebucks_ws_unauthenticated",
                            "Upgraded sockets still waiting for their auth frame",
                            value=stats["pending"])
    yield CounterMetricFamily("savebucks_ws_closed_too_slow",
                              "Sockets closed because their send queue was full",
                              value=hub.closed_too_slow)
    subscriber = app.get(SUBSCRIBER)
    yield CounterMetricFamily("savebucks_ws_subscriber_reconnects",
                              "Times this instance's Redis subscription was lost and re-made",
                              value=subscriber.reconnects if subscriber is not None else 0)


async def metrics(request: web.Request) -> web.Response:
    check_metrics_token(request)
    registry = CollectorRegistry(auto_describe=False)
    sources = await _sources(request.app)
    registry.register(_Snapshot(sources, request.app))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup_metrics(app: web.Application) -> None:
    """Serve ``GET /metrics`` with this app's cache of the expensive figures."""
    ttl = app[SETTINGS].metrics_cache_seconds
    app[CACHED] = {"queues": CachedRead(ttl), "outbox": CachedRead(ttl)}
    app.router.add_get("/metrics", metrics)
