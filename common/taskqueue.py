"""The Celery app object, shared so that the web can enqueue tasks by name.

Tasks themselves live in ``workers.tasks``; ``workers.celery_app`` imports this object, registers
them and adds the beat schedule. The trace id of the enqueuing request rides in a task header.

``celery_config(settings)`` is the whole configuration. ``celery_app`` is the one app every task
registers on and ``enqueue`` sends through; ``shared_app()`` makes it configured from the
process's settings when it is first used, not when this module is imported, so importing it (the
CLI, the web) reads no environment. ``make_celery(settings)`` builds a separate app from given
settings.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun
from kombu import Queue

from common.config import Settings, get_settings
from common.outages import DEPENDENCY_DOWN
from common.tracing import current_trace_id, trace_id_var

QUEUES = ("sales", "payouts", "leaderboard", "analytics", "events", "default")
TRACE_HEADER = "trace_id"

# Redis only: tasks run for seconds; an unacknowledged task (acks_late) is redelivered after this
# long, so it must exceed the longest task, including the payout provider's retries. (RabbitMQ
# redelivers an unacknowledged task when the worker's connection closes, whatever its age.)
VISIBILITY_TIMEOUT = 3600


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_is_amqp:
        # Publisher confirms: a send returns once RabbitMQ has taken the message (into a durable
        # queue), so a broker restart cannot lose a task the caller believes sent.
        return {"confirm_publish": True}
    return {"visibility_timeout": VISIBILITY_TIMEOUT}


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(settings),
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "timezone": "UTC",
        "enable_utc": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "default",
        # Durable queues with persistent messages (kombu's defaults, said here): on RabbitMQ they
        # survive a broker restart. With acks_late and reject_on_worker_lost, a task is removed
        # only once it ran, and one whose worker died is delivered again.
        "task_queues": [Queue(name, durable=True) for name in QUEUES],
        "task_default_delivery_mode": "persistent",
        "task_routes": {f"{name}.*": {"queue": name} for name in QUEUES},
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
    }


class RetryingTask(Task):
    """Every task's base: a task that met PostgreSQL, PgBouncer or Redis unreachable (a restart,
    a failover) runs again later instead of failing for good. The tasks are idempotent (acks
    late already delivers one again after a worker dies), so a second run has no visible effect.
    Backoff from 1 s doubling to 30 s, with jitter, for as long as the outage lasts."""

    autoretry_for = DEPENDENCY_DOWN
    retry_backoff = 1
    retry_backoff_max = 30
    retry_jitter = True
    max_retries = None


def make_celery(settings: Settings) -> Celery:
    app: Celery = Celery("savebucks", set_as_current=False, task_cls=RetryingTask)
    app.conf.update(celery_config(settings))
    return app


def shared_app() -> Celery:
    """The app of the process: configured, on first use, from ``common.config.get_settings``
    (the settings the worker, beat and the CLI run with)."""
    app: Celery = Celery("savebucks", set_as_current=False, task_cls=RetryingTask)
    app.add_defaults(lambda: celery_config(get_settings()))
    return app


celery_app = shared_app()


def enqueue(name: str, *args: Any, countdown: float | None = None, **kwargs: Any) -> None:
    """Send a task by name (blocking network I/O: from the event loop, run it in a thread)."""
    celery_app.send_task(name, args=args, kwargs=kwargs, countdown=countdown)


@before_task_publish.connect
def _attach_trace_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    trace_id = current_trace_id()
    if headers is not None and trace_id and TRACE_HEADER not in headers:
        headers[TRACE_HEADER] = trace_id


@task_prerun.connect
def _restore_trace_id(task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    trace_id = getattr(request, TRACE_HEADER, None) if request is not None else None
    if trace_id is None and request is not None:
        trace_id = (getattr(request, "headers", None) or {}).get(TRACE_HEADER)
    trace_id_var.set(trace_id)


@task_postrun.connect
def _clear_trace_id(**_: Any) -> None:
    trace_id_var.set(None)
