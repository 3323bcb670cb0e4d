"""The metric objects every process shares, and the figures kept in Redis for ``GET /metrics``.

Two kinds of figures:

- Per process (the objects below, web.metrics' request figures and its reading of the WebSocket
  hub's own counts): HTTP requests and latency, open WebSockets, events published, received and
  delivered. Each web instance exposes its own; Prometheus sums instances.
- Cluster-wide, kept in Redis: Celery task outcomes and durations (recorded by the workers' task
  signals, so no worker needs a port of its own or a multiprocess directory, and a worker that
  dies loses nothing already counted), and the last ledger check's result. Every web instance
  reads the same figures: aggregate them with ``max``, never ``sum``, across instances.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import redis.asyncio as aredis
from prometheus_client import Counter

from common.config import Settings
from common.redis import key
from common.redis import text as redis_text

# --- per process -----------------------------------------------------------------------------

# Latency buckets for an API whose hot reads take a few milliseconds. (The HTTP request figures
# themselves are kept by ``web.metrics.RequestStats``, cheaper than a labelled Histogram.)
HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS_PUBLISHED = Counter(
    "savebucks_events_published_total",
    "Outbox events this web process published to the Redis events channel after a commit",
)
EVENTS_RECEIVED = Counter(
    "savebucks_events_received_total",
    "Events this instance's hub received from the Redis events channel, by target",
    ["target"],
)
EVENTS_DELIVERED = Counter(
    "savebucks_events_delivered_total",
    "Event frames queued to a WebSocket on this instance (one per socket), by event name",
    ["event"],
)

POSTBACKS_UNKNOWN_NETWORK = Counter(
    "savebucks_postbacks_unknown_network_total",
    "Callbacks to a network name that is not configured (answered 403, nothing stored). No label:"
    " the name comes from the caller, and one series per made-up name would be a flood of its own",
)

# --- cluster-wide, in Redis --------------------------------------------------------------------

TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0)
TASK_OUTCOMES = ("success", "failure", "retry", "revoked")


def tasks_key(settings: Settings) -> str:
    """A set of the task names that have recorded at least one run."""
    return key(settings, "metrics", "celery", "tasks")


def task_key(settings: Settings, task: str) -> str:
    """A hash per task: ``outcome:<o>`` counts, ``sum`` seconds, ``le:<i>`` bucket counts."""
    return key(settings, "metrics", "celery", "task", task)


def ledger_check_key(settings: Settings) -> str:
    """The last ``savebucks check-ledger`` result, a JSON object (see ``record_ledger_check``)."""
    return key(settings, "metrics", "ledger_check")


def _bucket_index(seconds: float) -> int:
    for index, bound in enumerate(TASK_BUCKETS):
        if seconds <= bound:
            return index
    return len(TASK_BUCKETS)  # +Inf


def record_task(
    client: redis.Redis, settings: Settings, *, task: str, outcome: str, seconds: float | None
) -> None:
    """Count one finished run of ``task`` (one round trip). ``seconds`` is None when not timed."""
    name = task_key(settings, task)
    with client.pipeline(transaction=False) as pipe:
        pipe.sadd(tasks_key(settings), task)
        pipe.hincrby(name, f"outcome:{outcome}", 1)
        if seconds is not None:
            pipe.hincrbyfloat(name, "sum", seconds)
            pipe.hincrby(name, f"le:{_bucket_index(seconds)}", 1)
        pipe.execute()


def record_ledger_check(
    client: redis.Redis, settings: Settings, *, problems: int, checked_at: float | None = None
) -> None:
    """Store the result of a ledger check for ``savebucks_ledger_check_*`` (no expiry)."""
    value = {"ok": problems == 0, "problems": problems, "checkedAt": checked_at or time.time()}
    client.set(ledger_check_key(settings), orjson.dumps(value))


@dataclass(frozen=True, slots=True)
class TaskFigures:
    outcomes: dict[str, int]
    seconds_sum: float
    buckets: list[int]  # non-cumulative, one per TASK_BUCKETS bound plus +Inf


async def read_task_figures(client: aredis.Redis, settings: Settings) -> dict[str, TaskFigures]:
    names = sorted(map(redis_text, await client.smembers(tasks_key(settings))))
    if not names:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(task_key(settings, name))
        hashes = await pipe.execute()
    return {name: _task_figures(raw) for name, raw in zip(names, hashes, strict=True)}


def _task_figures(raw: dict[bytes, bytes]) -> TaskFigures:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    outcomes = {o: int(fields.get(f"outcome:{o}", 0)) for o in TASK_OUTCOMES}
    buckets = [int(fields.get(f"le:{i}", 0)) for i in range(len(TASK_BUCKETS) + 1)]
    return TaskFigures(outcomes, float(fields.get("sum", 0)), buckets)


async def read_ledger_check(client: aredis.Redis, settings: Settings) -> dict[str, Any] | None:
    raw = await client.get(ledger_check_key(settings))
    return orjson.loads(raw) if raw else None
