"""The worker entry point: ``celery -A workers.celery_app worker`` (``savebucks worker``)."""

from __future__ import annotations

import importlib

import workers.metrics  # noqa: F401  (connects the task signals that record outcomes)
from common.taskqueue import celery_app
from workers.schedule import SCHEDULE
from workers.tasks import TASK_MODULES

for module in TASK_MODULES:
    importlib.import_module(module)

celery_app.conf.beat_schedule = SCHEDULE
app = celery_app
