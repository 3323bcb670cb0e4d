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

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from common.config import Settings
from common.db import make_sync_engine
from common.effects import EFFECTS_KEY, Effects, LeaderboardDelta, Resources, bind_resources
from common.events import Event, mark_published, publish
from common.metrics import EVENTS_PUBLISHED
from common.redis import events_channel, make_redis

log = logging.getLogger(__name__)
T = TypeVar("T")


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
            self._run_effects(session, session.info.pop(EFFECTS_KEY, Effects()))

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
            mark_published(session, [e.id for e in events])

    def _apply_leaderboard(self, deltas: list[LeaderboardDelta]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for board, who, cents in deltas:
            pipe.zincrby(board, cents, who)
        for board in {d[0] for d in deltas}:
            pipe.zremrangebyscore(board, "-inf", 0)  # as the rebuild: nobody at zero or below
        pipe.execute()

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
