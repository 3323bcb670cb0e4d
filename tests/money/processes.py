"""Real Celery worker processes for the payout fault tests: started with their own settings,
SIGKILLed as a crash would, and a deadline-bounded poll."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def start_worker(name: str = "kill", **env: str) -> subprocess.Popen[bytes]:
    """A payouts worker in its own process group (so a kill takes its pool children too), on the
    drill app (``PAYOUT_TEST_PAUSE_AT`` in ``env`` stops it at that checkpoint)."""
    full = {**os.environ, "LOG_LEVEL": "WARNING", "PAYOUT_SANDBOX_LATENCY_MS": "0", **env}
    celery = str(Path(sys.executable).parent / "celery")
    return subprocess.Popen(
        [celery, "-A", "tests.money.drill_app", "worker", "-Q", "payouts", "-c", "1", "-P", "prefork",
         "--without-mingle", "--without-gossip", "-n", f"{name}{os.getpid()}@%h"],
        cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
