"""The worker app of the payout fault tests: the real one, plus a checkpoint hook that stops the
task at ``PAYOUT_TEST_PAUSE_AT`` (announced in Redis) so that the test can SIGKILL it there.

``celery -A tests.money.drill_app worker ...`` (tests/money/processes.py)."""

from __future__ import annotations

import os
import time

from common.redis import key as redis_key
from workers.celery_app import app
from workers.checkpoints import install
from workers.context import context

PAUSE_AT = os.environ.get("PAYOUT_TEST_PAUSE_AT", "")


def _pause(name: str, payment_id: int) -> None:
    if name != PAUSE_AT:
        return
    ctx = context()
    ctx.redis.set(redis_key(ctx.settings, "test", "paused", payment_id), name)
    time.sleep(120)  # the test kills this worker long before


install(_pause if PAUSE_AT else None)

__all__ = ["app"]
