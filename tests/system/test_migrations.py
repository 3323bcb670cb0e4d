from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import common.models  # noqa: F401
from common.db import Base
from common.migrate import downgrade, upgrade
from tests.conftest import ADMIN_DATABASE_URL, TEST_DATABASE_URL
from tests.fixtures.databases import drop_database


@pytest.fixture
def scratch_url() -> Iterator[str]:
    """An empty database of its own, so that downgrading cannot disturb other tests."""
    parts = urllib.parse.urlsplit(TEST_DATABASE_URL)
    name = parts.path.lstrip("/") + "_mig"
    admin = create_engine(ADMIN_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield parts._replace(path=f"/{name}").geturl().replace("postgresql://", "postgresql+psycopg://", 1)
    with admin.connect() as conn:
        drop_database(conn, name)
    admin.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    upgrade(scratch_url)
    assert _tables(scratch_url) == set(Base.metadata.tables)
    downgrade(scratch_url)
    assert _tables(scratch_url) == set()
    upgrade(scratch_url)
    assert _tables(scratch_url) == set(Base.metadata.tables)


def test_models_and_migrations_agree(database: str) -> None:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_postback_search_backfills_logged_ids(scratch_url: str) -> None:
    """Rows logged before 0008 get the transaction and user ids under each scheme's names."""
    upgrade(scratch_url, "0007")
    engine = create_engine(scratch_url)
    rows = [
        ('{"txn_id": " t1 ", "user_id": "42", "sig": "x"}', "t1", 42),      # generic
        ('{"trans_id": "c9", "user_id": "7"}', "c9", 7),                     # CPX
        ('{"id": "s5", "uid": "0012"}', "s5", None),                         # SuperRewards
        ('{"id": "j3", "snuid": "99999999999999999999"}', "j3", None),       # Tapjoy
        ('{"txn_id": "' + "x" * 129 + '", "user_id": "abc"}', None, None),   # too long, not an id
        ("{}", None, None),
    ]
    try:
        with engine.begin() as conn:
            for params, _, _ in rows:
                conn.execute(text("INSERT INTO postback_log (network, method, params, verdict) "
                                  "VALUES ('n', 'GET', CAST(:p AS jsonb), 'accepted')"), {"p": params})
        upgrade(scratch_url)
        with engine.connect() as conn:
            found = conn.execute(text("SELECT txn_id, user_id FROM postback_log ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in found] == [(txn, user) for _, txn, user in rows]
