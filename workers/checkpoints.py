"""Named points inside a task's steps where a fault drill may act (stop the worker there, so a
test can SIGKILL it at an exact step). In production no hook is installed and a checkpoint does
nothing; the drill's worker installs one (tests/fixtures/drill_app.py)."""

from __future__ import annotations

from collections.abc import Callable

_hook: Callable[[str, int], None] | None = None


def checkpoint(name: str, payment_id: int) -> None:
    if _hook is not None:
        _hook(name, payment_id)


def install(hook: Callable[[str, int], None] | None) -> None:
    global _hook
    _hook = hook
