from __future__ import annotations

from common.config import load_settings
from common.taskqueue import VISIBILITY_TIMEOUT, celery_config


def test_rabbitmq_publishes_with_confirms_to_durable_queues() -> None:
    conf = celery_config(load_settings({"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}))
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert all(queue.durable for queue in conf["task_queues"])
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]


def test_redis_redelivers_after_the_visibility_timeout() -> None:
    conf = celery_config(load_settings({}))
    assert conf["broker_transport_options"] == {"visibility_timeout": VISIBILITY_TIMEOUT}


def test_every_task_is_retried_when_a_dependency_is_unreachable() -> None:
    import psycopg
    import redis
    import sqlalchemy.exc

    import workers.celery_app  # noqa: F401  (registers every task)
    from common.taskqueue import celery_app

    tasks = [t for name, t in celery_app.tasks.items() if not name.startswith("celery.")]
    assert tasks
    for task in tasks:
        for error in (psycopg.OperationalError, sqlalchemy.exc.OperationalError,
                      redis.ConnectionError):
            assert issubclass(error, tuple(task.autoretry_for)), (task.name, error)
        assert task.retry_backoff and task.retry_jitter, task.name
