"""tests/fixtures/databases.py: a test database is dropped even while a session that our role may
not terminate (an autovacuum worker, on PostgreSQL 15) is still on it, once that session leaves."""

from __future__ import annotations

import threading
import urllib.parse
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import ADMIN_DATABASE_URL, _sqlalchemy
from tests.fixtures.databases import drop_database


def test_a_session_of_a_role_we_may_not_signal_is_waited_for() -> None:
    admin = create_engine(_sqlalchemy(ADMIN_DATABASE_URL), isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    with admin.connect() as conn:
        superuser = conn.execute(text(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    if not superuser:
        pytest.skip("needs a superuser to stand for the autovacuum worker")
    suffix = uuid.uuid4().hex[:8]
    role, name = f"sb_dropper_{suffix}", f"sb_drop_{suffix}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN CREATEDB'))
    parts = urllib.parse.urlsplit(_sqlalchemy(ADMIN_DATABASE_URL))
    as_role = create_engine(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl(),
                            isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with as_role.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        other = create_engine(parts._replace(path=f"/{name}").geturl(), poolclass=NullPool)
        held = other.connect()  # a superuser's session on it: FORCE may not end it
        held.execute(text("SELECT 1"))
        leave = threading.Timer(1.0, held.close)
        leave.start()
        with as_role.connect() as conn:
            drop_database(conn, name)
            assert conn.execute(text("SELECT count(*) FROM pg_database WHERE datname = :n"),
                                {"n": name}).scalar() == 0
        leave.join()
        other.dispose()
    finally:
        as_role.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
