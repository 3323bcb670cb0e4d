"""Celery task outcomes and durations, recorded in Redis for the web's ``GET /metrics``.

Why Redis and not a port per worker: a deployment runs workers per queue, each with a prefork
pool; prometheus-client would need its multiprocess directory per host and a scrape target per
worker. One ``HINCRBY`` pipeline per finished task is cheap next to the task itself, survives a
worker restart, and every web instance exposes the same cluster-wide figures
(``common.metrics``). Recording never fails a task: a Redis error is logged and dropped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery.signals import task_postrun, task_prerun, task_revoked

from common.metrics import record_task
from workers.context import context

log = logging.getLogger(__name__)
# Celery's states for a run that ended, as the outcome label.
_OUTCOMES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry", "REVOKED": "revoked"}
# task id -> start (perf_counter). The thread pool runs several tasks in one process; each id is
# written by the thread running it and removed when it ends.
_started: dict[str, float] = {}


def _record(task: str, outcome: str, seconds: float | None) -> None:
    ctx = context()
    try:
        record_task(ctx.redis, ctx.settings, task=task, outcome=outcome, seconds=seconds)
    except redis.RedisError as exc:
        log.warning("task metrics not recorded", extra={"task": task, "error": str(exc)})


@task_prerun.connect
def _start(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


@task_postrun.connect
def _finish(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    if task is None:
        return
    seconds = time.perf_counter() - started if started is not None else None
    _record(task.name, _OUTCOMES.get(state or "", "failure"), seconds)


@task_revoked.connect
def _revoked(request: Any = None, **_: Any) -> None:
    name = getattr(request, "task", None) or getattr(request, "name", None)
    if name:
        _record(str(name), "revoked", None)
