"""The web's database paths against a private PostgreSQL that is stopped and restarted: a dead
server fails fast, and connections left over from before a restart never reach a request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import psycopg
import pytest
import redis
from sqlalchemy import select, text

from common.config import Settings
from common.db import make_sync_engine
from common.redis import events_channel
from common.sql import compile_query
from tests.fixtures.servers import PrivatePostgres, PrivateRedis
from web.db import PooledDatabase

pytestmark = pytest.mark.outage

READ = compile_query(select(text("1 AS one")))
WRITE = compile_query(text("SELECT 1 AS one"))  # not a Select construct: never retried


@pytest.fixture
async def db(running_pair: tuple[PrivatePostgres, PrivateRedis],
             settings: Settings) -> AsyncIterator[PooledDatabase]:
    pg, rd = running_pair
    mine = settings.model_copy(update={"database_url": pg.url, "redis_url": rd.url(0)})
    client = redis.Redis.from_url(mine.redis_url)
    database = PooledDatabase(
        mine, make_sync_engine(mine, pool_size=2, pool_timeout=mine.web_db_pool_timeout),
        client, events_channel(mine))
    await database.open()
    await database.pool.wait(10)
    yield database
    await database.close()
    client.close()


async def _fill(db: PooledDatabase, n: int = 4) -> None:
    """Check out ``n`` connections at once, so the pool holds that many."""
    conns = [await db.pool.getconn() for _ in range(n)]
    for conn in conns:
        await db.pool.putconn(conn)


async def test_reads_after_a_restart_never_see_a_dead_connection(
    db: PooledDatabase, running_pair: tuple[PrivatePostgres, PrivateRedis],
) -> None:
    pg, _ = running_pair
    await _fill(db)
    pg.stop()
    pg.start()
    # Every pooled connection is dead now; reads retry on a checked one, and the first dead
    # connection makes the others suspect, so writes get checked ones too.
    assert await db.fetch_one(READ) == {"one": 1}
    for _ in range(6):
        assert await db.fetch_one(WRITE) == {"one": 1}
        assert await db.fetch_all(READ) == [{"one": 1}]


async def test_a_write_on_a_dead_connection_is_not_repeated(
    db: PooledDatabase, running_pair: tuple[PrivatePostgres, PrivateRedis],
) -> None:
    pg, _ = running_pair
    await _fill(db, 2)
    pg.stop()
    pg.start()
    with pytest.raises(psycopg.OperationalError):
        await db.fetch_one(WRITE)  # its outcome is unknown to us: never run twice
    assert await db.fetch_one(WRITE) == {"one": 1}  # the others were checked, then replaced


async def test_a_stopped_database_fails_fast(
    db: PooledDatabase, running_pair: tuple[PrivatePostgres, PrivateRedis],
) -> None:
    pg, _ = running_pair
    await _fill(db)
    pg.kill()
    took = []
    for _ in range(10):
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):  # PoolTimeout is one
            await db.fetch_one(READ)
        took.append(time.monotonic() - started)
    # The first waits at most the pool timeout; once the database is known down, 0.1 s.
    assert max(took) < db._wait + 0.5
    assert max(took[2:]) < 0.5, took
    pg.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            assert await db.fetch_one(READ) == {"one": 1}
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "the pool did not reconnect"
    assert not db._down


async def test_the_write_engine_fails_fast_and_recovers(
    running_pair: tuple[PrivatePostgres, PrivateRedis], settings: Settings,
) -> None:
    from sqlalchemy.exc import OperationalError

    pg, _ = running_pair
    mine = settings.model_copy(update={"database_url": pg.url})
    engine = make_sync_engine(mine, pool_size=2, pool_timeout=mine.web_db_pool_timeout)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        pg.stop()
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert time.monotonic() - started < 1.0
        pg.start()
        with engine.connect() as conn:  # the stale pooled connection is pinged and replaced
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_only_plain_selects_are_read_only() -> None:
    from sqlalchemy import column, insert, table

    t = table("t", column("id"))
    assert compile_query(select(t.c.id)).read_only
    assert not compile_query(select(t.c.id).with_for_update()).read_only
    assert not compile_query(insert(t).values(id=1)).read_only
    ins = insert(t).values(id=1).returning(t.c.id).cte("ins")
    assert not compile_query(select(ins.c.id)).read_only
    assert not compile_query(text("SELECT 1")).read_only


async def test_the_health_probe_survives_a_restart_and_ignores_a_busy_pool(
    db: PooledDatabase, running_pair: tuple[PrivatePostgres, PrivateRedis],
) -> None:
    pg, _ = running_pair
    await db.ping()
    pg.stop()
    pg.start()
    await db.ping()  # its connection died with the server: a new one answers at once
    held = [await db.pool.getconn() for _ in range(db.pool.max_size)]
    try:
        await db.ping()  # every request connection is taken: the database is still up
    finally:
        for conn in held:
            await db.pool.putconn(conn)


@pytest.mark.parametrize("threshold", [None, 0, 3])
def test_both_pools_prepare_statements_as_configured(settings: Settings, threshold: int | None) -> None:
    from common.db import connect_args

    mine = settings.model_copy(update={"database_prepare_threshold": threshold})
    assert connect_args(mine)["prepare_threshold"] == threshold
    database = PooledDatabase(mine, make_sync_engine(mine, pool_size=1), redis.Redis(),
                              events_channel(mine))
    assert database.pool.kwargs["prepare_threshold"] == threshold
    database.engine.dispose()
    database.executor.shutdown()
