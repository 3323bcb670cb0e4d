"""What a transaction asks to happen once it has committed (see ``common/uow.py``).

Services register effects on their session: outbox events to publish (``common/events.py``),
leaderboard deltas to apply (``common/services/leaderboard.py``), tasks to enqueue
(``enqueue_after_commit``). The unit of work that owns the transaction runs them after the commit,
or drops them on a rollback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from common.events import Event

EFFECTS_KEY = "savebucks.effects"
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


