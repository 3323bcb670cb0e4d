"""What a transaction asks to happen once it has committed (see ``common/uow.py``).

Services register effects on their session: outbox events to publish (``common/events.py``),
leaderboard deltas to apply (``common/services/leaderboard.py``), tasks to enqueue
(``enqueue_after_commit``). The unit of work that owns the transaction runs them after the commit,
or drops them on a rollback.

A service that must reach Redis inside the transaction (the leaderboard's announcement throttle)
asks ``resources(session)``: the settings and Redis client of the unit of work that opened the
session.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy.orm import Session

from common.config import Settings, get_settings
from common.redis import make_redis

if TYPE_CHECKING:
    from common.events import Event

EFFECTS_KEY = "savebucks.effects"
RESOURCES_KEY = "savebucks.resources"
LeaderboardDelta = tuple[str, str, int]  # board key, member, cents


@dataclass
class Effects:
    """What a transaction asked to happen after it commits, in order of registration."""

    events: list[Event] = field(default_factory=list)
    leaderboard: list[LeaderboardDelta] = field(default_factory=list)
    tasks: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def mark(self) -> tuple[int, int, int]:
        """How much is registered so far (see ``forget_after``)."""
        return len(self.events), len(self.leaderboard), len(self.tasks)

    def forget_after(self, mark: tuple[int, int, int]) -> None:
        """A savepoint rolled back what was registered since ``mark``; the transaction goes on."""
        del self.events[mark[0]:], self.leaderboard[mark[1]:], self.tasks[mark[2]:]


def after_commit(session: Session) -> Effects:
    """The effects of the session's current transaction."""
    effects: Effects = session.info.setdefault(EFFECTS_KEY, Effects())
    return effects


def enqueue_after_commit(session: Session, name: str, *args: Any) -> None:
    """Send task ``name`` once this transaction has committed (never for a rollback)."""
    after_commit(session).tasks.append((name, args))




@dataclass(frozen=True)
class Resources:
    """What a service may use during its transaction besides the session."""

    settings: Settings
    redis: redis.Redis


def bind_resources(session: Session, found: Resources) -> None:
    """Called by the unit of work on each session it opens."""
    session.info[RESOURCES_KEY] = found


def resources(session: Session) -> Resources:
    """The resources of the unit of work that opened ``session``; for a session that none opened
    (a test's, a console's), the process's own (``process_resources``)."""
    found: Resources | None = session.info.get(RESOURCES_KEY)
    return found if found is not None else process_resources()


@functools.cache
def process_resources() -> Resources:
    """The process's settings (``common.config.get_settings``) and one Redis client made from
    them, on first use."""
    settings = get_settings()
    return Resources(settings, make_redis(settings))
