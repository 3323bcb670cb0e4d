"""The worker process's resources (engine, Redis), made on first use in each process.

Celery forks its pool processes: a connection pool made before the fork would be shared by the
children, so each child builds its own on first use and the parent's is discarded at fork.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from common.config import get_settings
from common.uow import SyncContext

_context: SyncContext | None = None


def context() -> SyncContext:
    global _context
    if _context is None:
        _context = SyncContext.create(get_settings(), pool_size=2)
    return _context


@worker_process_init.connect
def _forget_parent_resources(**_: Any) -> None:
    global _context
    _context = None
