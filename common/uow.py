"""The unit of work: one transaction, and the effects that run only after it commits.

Every write, in a web handler, a task or a CLI command, runs in a ``UnitOfWork.transaction()``.
Services register what must happen once their change is durable on the session
(``after_commit(session)``): outbox events to publish (``common/events.py``), leaderboard deltas to
apply (``common/services/leaderboard.py``) and tasks to enqueue (``enqueue_after_commit``). A
rolled-back unit runs none of them. A failed effect is logged and never undoes the commit: the
outbox sweep, the leaderboard rebuild and the beat's batches and sweeps repair what was not done.

``SyncContext`` bundles what a sync process needs (settings, engine, Redis, a unit of work); the
web runs the same unit on its write threads (``web/db.py``).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import Redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from common.config import Settings
from common.db import make_sync_engine
from common.effects import EFFECTS_KEY, Effects, LeaderboardDelta, Resources, bind_resources
from common.events import Event, mark_published, publish
from common.metrics import EVENTS_PUBLISHED
from common.redis import events_channel, make_redis

log = logging.getLogger(__name__)
T = TypeVar("T")
# The thread that runs after-commit effects inside ``UnitOfWork.effects_behind`` (per thread of
# the caller: the web's write threads share one unit and never use it).
_BEHIND: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar(
    "effects_behind", default=None)
_NO_FLUSH_WAIT = text("SET LOCAL synchronous_commit TO off")
# KEYS: the boards; ARGV: per board, how many members change, then (cents, member) for each.
# As the rebuild does, nobody stays on a board at zero or below.
_LEADERBOARD = """
local at = 1
for _, board in ipairs(KEYS) do
    local count = tonumber(ARGV[at])
    at = at + 1
    for _ = 1, count do
        redis.call('zincrby', board, ARGV[at], ARGV[at + 1])
        at = at + 2
    end
    redis.call('zremrangebyscore', board, '-inf', 0)
end
"""


@dataclass
class UnitOfWork:
    """Opens transactions and runs their effects after commit. With ``settings``, the services
    of its transactions reach them and its Redis client through ``common.effects.resources``."""

    sessions: Callable[[], AbstractContextManager[Session]]
    redis: Redis
    channel: str
    enqueue: Callable[..., None]
    settings: Settings | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Run the block in one transaction; its effects run once it has committed."""
        with self.sessions() as session:
            if self.settings is not None:
                bind_resources(session, Resources(self.settings, self.redis))
            try:
                with session.begin():
                    yield session
            except BaseException:
                session.info.pop(EFFECTS_KEY, None)
                raise
            effects = session.info.pop(EFFECTS_KEY, Effects())
            behind = _BEHIND.get()
            if behind is None:
                self._run_effects(session, effects)
                return
        # Its own session (the marking's): this one is the caller's again once the block ends.
        behind.submit(contextvars.copy_context().run, self._run_effects_apart, effects)

    @contextmanager
    def effects_behind(self) -> Iterator[None]:
        """Within the block, each committed transaction's effects run on one thread of their
        own, in commit order, while the caller goes on to its next transaction; the block ends
        once they have all run. For loops of batches (the beat's approvals): a batch's publish,
        marking and leaderboard update overlap the next batch's statement instead of adding to
        it. Each effect still runs only after its own commit."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="effects") as behind:
            token = _BEHIND.set(behind)
            try:
                yield
            finally:
                _BEHIND.reset(token)

    def _run_effects_apart(self, effects: Effects) -> None:
        with self.sessions() as session:
            self._run_effects(session, effects)

    def commit(self, session: Session) -> None:
        """Commit a session whose transaction began outside ``transaction()`` (tests, a console)
        and run its effects, as ``transaction()`` does."""
        try:
            session.commit()
        except BaseException:
            session.info.pop(EFFECTS_KEY, None)
            raise
        self._run_effects(session, session.info.pop(EFFECTS_KEY, Effects()))

    def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """``fn(session, **kwargs)`` in one unit of work (the web's write threads call this)."""
        with self.transaction() as session:
            return fn(session, **kwargs)

    def _run_effects(self, session: Session, effects: Effects) -> None:
        if effects.events:
            self._publish(session, effects.events)
        if effects.leaderboard:
            self._guarded("leaderboard update left to the rebuild", self._apply_leaderboard,
                          effects.leaderboard)
        for name, args in effects.tasks:
            self._guarded("enqueue failed; left to beat", self.enqueue, name, *args)

    def _publish(self, session: Session, events: list[Event]) -> None:
        if not self._guarded("events left for the outbox sweep", publish, self.redis,
                             self.channel, events):
            return
        EVENTS_PUBLISHED.inc(len(events))
        # Marking is bookkeeping for the sweep: a failure only makes it send them again, and
        # subscribers drop duplicates by event id.
        self._guarded("could not mark events published", self._mark, session, events)

    def _mark(self, session: Session, events: list[Event]) -> None:
        with session.begin():
            # Without waiting for the flush to disk: a mark lost in a crash only makes the sweep
            # send those events again, which subscribers drop by id; the events themselves were
            # durable before anything was published.
            session.execute(_NO_FLUSH_WAIT)
            mark_published(session, [e.id for e in events])

    def _apply_leaderboard(self, deltas: list[LeaderboardDelta]) -> None:
        # Summed per board and member, then applied by one script (atomic, as MULTI was): a batch
        # of approvals makes thousands of deltas, and a command each cost more than the batch.
        summed: dict[str, dict[str, int]] = {}
        for board, who, cents in deltas:
            members = summed.setdefault(board, {})
            members[who] = members.get(who, 0) + cents
        args: list[int | str] = []
        for members in summed.values():
            args.append(len(members))
            for who, cents in members.items():
                args += (cents, who)
        self.redis.register_script(_LEADERBOARD)(keys=list(summed), args=args)

    @staticmethod
    def _guarded(what: str, fn: Callable[..., Any], *args: Any) -> bool:
        try:
            fn(*args)
        except Exception:
            log.warning(what, exc_info=True)
            return False
        return True


@dataclass
class SyncContext:
    """What a sync process (a worker, a CLI command) needs: settings, engine, Redis, a unit."""

    settings: Settings
    engine: Engine
    redis: Redis
    sessions: sessionmaker[Session]
    unit: UnitOfWork

    @classmethod
    def create(cls, settings: Settings, *, pool_size: int | None = None,
               engine: Engine | None = None, client: Redis | None = None) -> SyncContext:
        from common.taskqueue import enqueue

        engine = engine or make_sync_engine(settings, pool_size=pool_size)
        client = client or make_redis(settings)
        sessions = sessionmaker(engine, expire_on_commit=False)
        return cls(settings=settings, engine=engine, redis=client, sessions=sessions,
                   unit=UnitOfWork(sessions, client, events_channel(settings), enqueue,
                                   settings))

    def transaction(self) -> AbstractContextManager[Session]:
        return self.unit.transaction()

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()
