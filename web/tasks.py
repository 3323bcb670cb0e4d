"""Enqueuing a Celery task from the postback credit's fast path, the one write outside a unit of
work (its statement commits on its own). Everywhere else a service registers its tasks with
``common.effects.enqueue_after_commit`` and the unit of work sends them after the commit."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from common.taskqueue import enqueue

log = logging.getLogger(__name__)


async def enqueue_from_loop(name: str, *args: Any) -> None:
    """Send a task without blocking the event loop (the broker call is network I/O).

    A lost enqueue only delays the work: beat's batches and sweeps (due sale approvals, payout
    recovery) pick up whatever was committed and not yet processed, so the failure is logged.
    """
    try:
        await asyncio.to_thread(enqueue, name, *args)
    except Exception:
        log.warning("enqueue failed; left to beat", exc_info=True, extra={"task": name, "task_args": list(args)})
