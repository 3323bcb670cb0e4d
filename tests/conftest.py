"""Test fixtures: a real PostgreSQL and Redis, isolated per run and per test.

- One database per test run (``sb_test_<run>``), created and migrated with Alembic at the start,
  dropped at the end, so concurrent runs on one server never meet.
- Per test, a connection with an outer transaction; the ``session`` and the app's
  ``BoundDatabase`` work in savepoints inside it, and everything is rolled back afterwards.
- Tests marked ``committed`` use the real pools (and real workers see their rows); every table
  is truncated after them.
- Redis: the run's own database number (``TEST_REDIS_DB``, default 15) flushed around each test,
  and a key and channel prefix of the run's own.
"""

from __future__ import annotations

import logging
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import nullcontext

_RUN = f"{os.getpid()}_{secrets.token_hex(3)}"


def _test_urls() -> tuple[str, str, str]:
    base = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parts = urllib.parse.urlsplit(base)
    test_db = parts._replace(path=f"/sb_test_{_RUN}").geturl()
    admin_db = parts._replace(path="/postgres").geturl()
    redis_base = urllib.parse.urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis_url = redis_base._replace(path=f"/{os.environ.get('TEST_REDIS_DB', '15')}").geturl()
    return test_db, admin_db, redis_url


TEST_DATABASE_URL, ADMIN_DATABASE_URL, TEST_REDIS_URL = _test_urls()
# Before any SaveBucks module reads the settings (the Celery app is built at import).
os.environ.update(
    APP_ENV="test",
    DATABASE_URL=TEST_DATABASE_URL,
    REDIS_URL=TEST_REDIS_URL,
    REDIS_PREFIX=f"sbt{_RUN}",
    JWT_SECRET="test-secret-that-is-long-enough-for-hs256-0123456789",
    FLOWER_BASIC_AUTH="ops:test-password",
    BCRYPT_ROUNDS="4",
    LOG_JSON="true",
    # Tests change a dependency's state and look at /health at once; the shared probes have
    # their own tests (tests/web/test_health.py).
    HEALTH_CACHE_SECONDS="0",
)
os.environ.pop("CELERY_BROKER_URL", None)

import pytest
import redis
import redis.asyncio as aredis
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session

from common.config import Settings, get_settings
from common.db import Base, make_sync_engine
from common.migrate import upgrade
from common.redis import events_channel
from common.services.ledger import check_ledger
from tests.fixtures.cluster import cluster, healthy_cluster  # noqa: F401  (fixtures)
from tests.fixtures.databases import drop_database
from tests.fixtures.servers import private_pair, running_pair  # noqa: F401  (fixtures)

# Rows a migration seeds (reference data) survive the truncation after committed tests.
KEEP_TABLES = {"alembic_version"}
# Seeded rows of tables that tests also write to: truncated with the rest, then put back as the
# migration left them (RESTART IDENTITY gives them their original ids).
RESEED = [
    "INSERT INTO chat_rooms (name, is_public) VALUES ('General', true)",  # migration 0004
]


def _sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def ledger_problems(bind: Connection | Engine) -> list[str]:
    """What ``check-ledger`` finds wrong with the money in ``bind``'s view of the database."""
    with Session(bind=bind) as session:
        return check_ledger(session)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[str]:
    """The run's database, migrated to head; dropped when the run ends."""
    admin = create_engine(_sqlalchemy(ADMIN_DATABASE_URL), isolation_level="AUTOCOMMIT")
    name = urllib.parse.urlsplit(TEST_DATABASE_URL).path.lstrip("/")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(settings.sqlalchemy_url)
    yield settings.sqlalchemy_url
    with admin.connect() as conn:
        drop_database(conn, name)
    admin.dispose()


@pytest.fixture(scope="session")
def engine(database: str, settings: Settings) -> Iterator[Engine]:
    eng = make_sync_engine(settings, pool_size=5)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside an outer transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
            # Every user's money adds up after every test (docs/money.md), checked on the test's
            # own transaction before the rollback erases it.
            if outer.is_active:
                assert ledger_problems(conn) == []
        finally:
            if outer.is_active:
                outer.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    """A session whose commits are savepoints inside the test's transaction."""
    with Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as sess:
        yield sess


@pytest.fixture
def redis_sync(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
async def aredis_client(settings: Settings, redis_sync: redis.Redis) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def bound_db(connection: Connection, redis_sync: redis.Redis, settings: Settings):  # type: ignore[no-untyped-def]
    from web.db import BoundDatabase

    db = BoundDatabase(connection, redis_sync, events_channel(settings))
    yield db
    await db.close()


@pytest.fixture
async def client(aiohttp_client, settings: Settings, bound_db):  # type: ignore[no-untyped-def]
    """The aiohttp test client on the app bound to the test's transaction."""
    from web.app import create_app

    return await aiohttp_client(create_app(settings, db=bound_db))


def truncate_all(engine: Engine) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables if t.name not in KEEP_TABLES]
    if tables:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            for statement in RESEED:
                conn.execute(text(statement))


@pytest.fixture
def commit(session: Session, redis_sync: redis.Redis, settings: Settings) -> Callable[[Session], None]:
    """Commit the test's session as a unit of work would: then its after-commit effects run
    (events published, leaderboard deltas applied, tasks enqueued)."""
    from common.taskqueue import enqueue
    from common.uow import UnitOfWork

    return UnitOfWork(lambda: nullcontext(session), redis_sync, events_channel(settings),
                      enqueue).commit


@pytest.fixture
def committed(engine: Engine, redis_sync: redis.Redis) -> Iterator[Engine]:
    """For tests that commit for real (real pools, real workers): clean tables afterwards."""
    truncate_all(engine)
    yield engine
    try:
        with engine.connect() as conn:  # checked before the truncation wipes the evidence
            assert ledger_problems(conn) == []
    finally:
        truncate_all(engine)


@pytest.fixture
async def live_client(aiohttp_client, settings: Settings, committed: Engine):  # type: ignore[no-untyped-def]
    """The app with its production database path (pools, threads); data really commits."""
    from web.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
def celery_worker(committed: Engine) -> Iterator[object]:
    """A real Celery worker in this process, consuming every queue from the test Redis."""
    from celery.contrib.testing.worker import start_worker

    from common.taskqueue import QUEUES
    from workers.celery_app import app

    app.loader.import_module("celery.contrib.testing.tasks")
    # The embedded worker sets the root logger's level to its own (ERROR) and leaves it there:
    # put it back, so that later tests in this process still see warnings (caplog).
    root = logging.getLogger()
    level = root.level
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            shutdown_timeout=10,
            queues=list(QUEUES),
        ) as worker:
            yield worker
    finally:
        root.setLevel(level)
