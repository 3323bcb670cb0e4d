"""How handlers reach PostgreSQL.

- ``fetch_one`` / ``fetch_all`` run a ``common.sql.Query`` (a Core statement compiled once) on a
  psycopg ``AsyncConnectionPool`` in autocommit: one round trip, prepared after a few runs, no
  SQLAlchemy on the hot path. psycopg's pool hands connections out in arrival order, which keeps
  the p99 near the median (docs/database.md).
- ``run`` executes a sync service (``fn(session, **kwargs)``, the same code the workers run) in one
  transaction on a bounded thread pool, and publishes the events it emitted once it commits.

``BoundDatabase`` runs both on one connection inside a test's outer transaction, each ``run`` in a
savepoint, so a test sees, and rolls back, everything the app did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import redis.asyncio as aredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from common.config import Settings
from common.events import Event, committed_events, discard_events, publish_events_async
from common.metrics import EVENTS_PUBLISHED
from common.sql import Query

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = dict[str, Any]
_MARK = text(
    "UPDATE outbox SET published_at = now() WHERE id = ANY(:ids) AND published_at IS NULL"
)
_MARK_SQL = "UPDATE outbox SET published_at = now() WHERE id = ANY(%(ids)s) AND published_at IS NULL"


class Database(Protocol):
    async def fetch_one(self, query: Query, params: dict[str, Any] | None = None) -> Row | None: ...
    async def fetch_all(self, query: Query, params: dict[str, Any] | None = None) -> list[Row]: ...
    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T: ...
    async def ping(self) -> None: ...


class _Publishing:
    """After a commit: send the events on Redis, then mark them published."""

    redis: aredis.Redis
    channel: str

    async def _after_commit(self, events: Sequence[Event]) -> None:
        if events:
            ids = await publish_events_async(events, client=self.redis, channel=self.channel)
            if ids:
                EVENTS_PUBLISHED.inc(len(ids))
                await self._mark(ids)

    async def _mark(self, ids: list[int]) -> None:
        raise NotImplementedError


class PooledDatabase(_Publishing):
    def __init__(
        self, settings: Settings, engine: Engine, redis: aredis.Redis, channel: str
    ) -> None:
        self.pool = AsyncConnectionPool(
            settings.libpq_url,
            min_size=2,
            max_size=settings.db_pool_size,
            timeout=settings.db_pool_timeout,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "prepare_threshold": 1,
                "options": f"-c statement_timeout={settings.db_statement_timeout_ms} -c timezone=UTC",
                "application_name": "savebucks-web",
            },
            open=False,
        )
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # As many threads as the sync engine has connections: a write never waits for a thread
        # while holding a connection, nor the other way round.
        self.executor = ThreadPoolExecutor(
            max_workers=settings.db_pool_size, thread_name_prefix="db-write"
        )
        self.redis = redis
        self.channel = channel

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()
        self.executor.shutdown(wait=True)
        self.engine.dispose()

    async def fetch_one(self, query: Query, params: dict[str, Any] | None = None) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query.sql, query.params(params))
            return await cur.fetchone()

    async def fetch_all(self, query: Query, params: dict[str, Any] | None = None) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query.sql, query.params(params))
            return await cur.fetchall()

    async def ping(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        result, events = await loop.run_in_executor(self.executor, self._transaction, fn, kwargs)
        await self._after_commit(events)
        return result

    def _transaction(self, fn: Callable[..., T], kwargs: dict[str, Any]) -> tuple[T, list[Event]]:
        with self.sessions() as session:
            try:
                with session.begin():
                    result = fn(session, **kwargs)
            except BaseException:
                discard_events(session)
                raise
            return result, committed_events(session)

    async def _mark(self, ids: list[int]) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(_MARK_SQL, {"ids": ids})
        except Exception:  # the sweep republishes; subscribers drop duplicates by id
            log.warning("could not mark events published", exc_info=True)


class BoundDatabase(_Publishing):
    """Everything on one connection inside the caller's transaction (tests)."""

    def __init__(self, connection: Connection, redis: aredis.Redis, channel: str) -> None:
        self.connection = connection
        self.session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        self.redis = redis
        self.channel = channel
        # One thread owns the connection; requests queue for it as they would for a pool of one.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-test")

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.session.close()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _fetch(self, query: Query, params: dict[str, Any] | None) -> list[Row]:
        result = self.connection.exec_driver_sql(query.sql, query.params(params))
        return [dict(row) for row in result.mappings()] if result.returns_rows else []

    async def fetch_one(self, query: Query, params: dict[str, Any] | None = None) -> Row | None:
        rows = await self._call(self._fetch, query, params)
        return rows[0] if rows else None

    async def fetch_all(self, query: Query, params: dict[str, Any] | None = None) -> list[Row]:
        return await self._call(self._fetch, query, params)

    async def ping(self) -> None:
        await self._call(self.connection.exec_driver_sql, "SELECT 1")

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        result, events = await self._call(self._transaction, fn, kwargs)
        await self._after_commit(events)
        return result

    def _transaction(self, fn: Callable[..., T], kwargs: dict[str, Any]) -> tuple[T, list[Event]]:
        try:
            with self.session.begin():
                result = fn(self.session, **kwargs)
        except BaseException:
            discard_events(self.session)
            raise
        return result, committed_events(self.session)

    async def _mark(self, ids: list[int]) -> None:
        await self._call(lambda: self.connection.execute(_MARK, {"ids": ids}))
