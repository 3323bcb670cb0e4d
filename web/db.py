"""How handlers reach PostgreSQL.

- ``fetch_one`` / ``fetch_all`` run a ``common.sql.Query`` (a Core statement compiled once) on a
  psycopg ``AsyncConnectionPool`` in autocommit: one round trip, prepared from its second run
  (``DATABASE_PREPARE_THRESHOLD``; off behind PgBouncer before 1.21), no
  SQLAlchemy on the hot path. psycopg's pool hands connections out in arrival order, which keeps
  the p99 near the median (docs/database.md).
- ``run`` executes a sync service (``fn(session, **kwargs)``, the same code the workers run) in
  one unit of work (``common/uow.py``: the transaction, then its after-commit effects: events,
  leaderboard deltas, tasks) on a bounded thread pool, exactly as a worker or the CLI would.

When PostgreSQL goes away, both paths fail fast (a short wait for a connection, libpq's connect
timeout) with psycopg's or SQLAlchemy's ``OperationalError``, which the error middleware answers
with 503. When it comes back, pooled connections made before the failure are dead: the first one
found dead marks every connection made before it as suspect, and each suspect is checked (one
empty query) the next time it is handed out, and replaced if dead; a read-only query that met a
dead connection runs once more on another. A steady pool pays nothing for this: no lookup or check
runs until a connection has been seen to die. The write engine pings on checkout
(``pool_pre_ping``).

``BoundDatabase`` runs both on one connection inside a test's outer transaction, each ``run`` in a
savepoint, so a test sees, and rolls back, everything the app did.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import psycopg
import redis
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from common.config import Settings
from common.db import connect_args
from common.sql import Query
from common.taskqueue import enqueue
from common.uow import UnitOfWork

T = TypeVar("T")
Row = dict[str, Any]
# Seconds a request waits for a connection while the database is known to be unreachable.
DOWN_WAIT = 0.1


class Database(Protocol):
    async def fetch_one(self, query: Query, params: dict[str, Any] | None = None) -> Row | None: ...
    async def fetch_all(self, query: Query, params: dict[str, Any] | None = None) -> list[Row]: ...
    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T: ...
    async def ping(self) -> None: ...


class PooledDatabase:
    def __init__(
        self, settings: Settings, engine: Engine, client: redis.Redis, channel: str
    ) -> None:
        # When each pooled connection was made or last checked, and the time before which they
        # are suspect (set when one is found dead).
        self._checked: weakref.WeakKeyDictionary[AsyncConnection[DictRow], float] = (
            weakref.WeakKeyDictionary()
        )
        self._suspect_before = 0.0
        # While the last attempt found the database unreachable, a request waits only briefly for
        # a connection: during an outage every request would otherwise wait the full timeout.
        self._wait = settings.web_db_pool_timeout
        self._down = False
        # GET /health's own connection: a pool busy with requests is not a database that is down.
        self._probe: AsyncConnection[DictRow] | None = None
        self._probe_kwargs: dict[str, Any] = {
            **connect_args(settings), "autocommit": True,
            "application_name": "savebucks-web-health",
        }
        self._url = settings.libpq_url
        self.pool = AsyncConnectionPool(
            settings.libpq_url,
            connection_class=AsyncConnection[DictRow],  # typing only: the rows are dicts
            min_size=2,
            max_size=settings.db_pool_size,
            timeout=settings.web_db_pool_timeout,
            configure=self._made,
            kwargs={
                **connect_args(settings),
                "autocommit": True,
                "row_factory": dict_row,
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
        self.unit = UnitOfWork(self.sessions, client, channel, enqueue, settings)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.close()
        await self.pool.close()
        self.executor.shutdown(wait=True)
        self.engine.dispose()

    async def fetch_one(self, query: Query, params: dict[str, Any] | None = None) -> Row | None:
        rows = await self._execute(query, params, one=True)
        return rows[0] if rows else None

    async def fetch_all(self, query: Query, params: dict[str, Any] | None = None) -> list[Row]:
        return await self._execute(query, params, one=False)

    async def _execute(self, query: Query, params: dict[str, Any] | None, *, one: bool) -> list[Row]:
        """The rows (the first only when ``one``). A suspect connection is checked before use and
        skipped if dead; a read-only query that meets a dead connection runs once more.

        The connection is taken with ``getconn`` and given back with ``putconn`` rather than
        through ``pool.connection()``: that context manager adds a generator-based wrapper and the
        connection's own ``async with`` (a commit, taking the connection's lock, that has nothing
        to commit in autocommit), about 20 us per query under load. ``putconn`` still rolls back
        or discards a connection returned in a transaction, mid-query (a cancelled request) or
        broken, as the context manager's exit would have.
        """
        retry = query.read_only
        pool = self.pool
        wait = DOWN_WAIT if self._down else self._wait
        deadline = time.monotonic() + wait
        while True:
            try:
                conn = await pool.getconn(wait)
            except PoolTimeout:
                self._down = True
                raise
            try:
                # No check in a steady pool: the lookup runs only once a connection has died.
                suspect = (self._suspect_before
                           and self._checked.get(conn, 0.0) <= self._suspect_before)
                if suspect and not await self._alive(conn):
                    wait = max(deadline - time.monotonic(), 0.05)
                    continue  # the pool discards it on return; take another
                try:
                    cur = await conn.execute(query.sql, query.params(params))
                    if one:
                        row = await cur.fetchone()
                        rows = [row] if row is not None else []
                    else:
                        rows = await cur.fetchall()
                except psycopg.OperationalError:
                    if not conn.broken:
                        raise
                    self._suspect_before = time.monotonic()
                    if not retry:
                        raise
                    retry = False
                    wait = max(deadline - time.monotonic(), 0.05)
                    continue
            finally:
                await pool.putconn(conn)
            self._down = False
            return rows

    async def ping(self) -> None:
        """``SELECT 1`` on a connection of its own (GET /health coalesces the calls, so one at a
        time); when that connection turns out dead, once more on a new one."""
        for attempt in (1, 2):
            if self._probe is None or self._probe.closed:
                self._probe = await AsyncConnection.connect(self._url, **self._probe_kwargs)
            probe = self._probe
            try:
                await probe.execute("SELECT 1")
                return
            except BaseException:
                # Cancelled half-way (the check's time limit) or dead: never reused.
                self._probe = None
                with contextlib.suppress(Exception):
                    await probe.close()
                if attempt == 2 or not probe.broken:
                    raise

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        # The thread runs in a copy of this request's context: its trace id reaches the log rows,
        # outbox events and tasks the unit writes (run_in_executor alone does not carry it).
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, lambda: context.run(self.unit.run, fn, **kwargs))

    async def _made(self, conn: AsyncConnection[DictRow]) -> None:
        self._checked[conn] = time.monotonic()

    async def _alive(self, conn: AsyncConnection[DictRow]) -> bool:
        """One empty query on a suspect connection (this, and not the pool's own ``check``,
        whose failures back off for a second each)."""
        try:
            await conn.execute("")
        except psycopg.OperationalError:
            return False
        self._checked[conn] = time.monotonic()
        return True


class BoundDatabase:
    """Everything on one connection inside the caller's transaction (tests): each unit of work is
    a savepoint of it, and its effects run as they would in production."""

    def __init__(self, connection: Connection, client: redis.Redis, channel: str) -> None:
        self.connection = connection
        self.session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        self.unit = UnitOfWork(self._same_session, client, channel, enqueue)
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
        context = contextvars.copy_context()
        return await self._call(lambda: context.run(self.unit.run, fn, **kwargs))

    @contextmanager
    def _same_session(self) -> Iterator[Session]:
        yield self.session  # kept open: it lives as long as the test's connection
