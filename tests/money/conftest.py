"""The money checker: after every test here, every user's money must add up (docs/money.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from common.services.ledger import check_ledger


def _problems(bind: Connection | Engine) -> list[str]:
    with Session(bind=bind) as session:
        return check_ledger(session)


@pytest.fixture(autouse=True)
def ledger_checker(request: pytest.FixtureRequest, connection: Connection) -> Iterator[None]:
    """Inside a test's transaction: checked on its connection before the rollback."""
    yield
    if "committed" not in request.fixturenames:
        assert _problems(connection) == []


@pytest.fixture
def committed(committed: Engine) -> Iterator[Engine]:
    """The shared ``committed``, checked before its truncation wipes the evidence."""
    yield committed
    with committed.connect() as conn:
        assert _problems(conn) == []
