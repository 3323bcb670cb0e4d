"""A unit of work for sync code (workers, CLI): one transaction, events published after commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from common.config import Settings
from common.db import make_sync_engine
from common.events import committed_events, discard_events, publish_events
from common.redis import events_channel, make_redis


@dataclass
class SyncContext:
    """What a sync process needs to run services: settings, the engine, a Redis client."""

    settings: Settings
    engine: Engine
    redis: redis.Redis
    sessions: sessionmaker[Session]

    @classmethod
    def create(cls, settings: Settings, *, pool_size: int | None = None) -> SyncContext:
        engine = make_sync_engine(settings, pool_size=pool_size)
        return cls(
            settings=settings,
            engine=engine,
            redis=make_redis(settings),
            sessions=sessionmaker(engine, expire_on_commit=False),
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Run the block in one transaction; publish the events it emitted once it commits."""
        with self.sessions() as session:
            try:
                with session.begin():
                    yield session
            except BaseException:
                discard_events(session)
                raise
            events = committed_events(session)
            publish_events(
                events, client=self.redis, channel=events_channel(self.settings), session=session
            )

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()
