"""The ledger: one posting per cause, balance == sum(ledger), no balance below zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from common.models import OutboxEvent
from common.services.ledger import InsufficientFunds, check_ledger, post_entry
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import fund
from tests.fixtures.money import committed, ledger_checker  # noqa: F401


def test_post_entry_moves_balance_and_emits(session: Session) -> None:
    user = make_user(session)
    posted = post_entry(session, user_id=user.id, amount=Decimal("12.34"), kind="prize", key="prize:1")
    assert posted is not None and posted.balance == Decimal("12.34")
    session.refresh(user)
    assert user.balance == Decimal("12.34")
    events = session.query(OutboxEvent).filter_by(event="balance:updated").all()
    assert [e.data for e in events] == [{"newBalance": 12.34, "change": 12.34, "reason": "prize"}]
    assert events[0].target_id == user.id


def test_same_key_posts_once(session: Session) -> None:
    user = make_user(session)
    first = post_entry(session, user_id=user.id, amount=Decimal("5"), kind="prize", key="prize:x")
    again = post_entry(session, user_id=user.id, amount=Decimal("5"), kind="prize", key="prize:x")
    assert first is not None and again is None
    session.refresh(user)
    assert user.balance == Decimal("5.00")


def test_debit_beyond_balance_is_refused_and_writes_nothing(session: Session) -> None:
    user = make_user(session)
    fund(session, user.id, "3.00")
    with pytest.raises(InsufficientFunds):
        post_entry(session, user_id=user.id, amount=Decimal("-3.01"), kind="adjustment", key="a:1")
    count = session.execute(text("SELECT count(*) FROM ledger_entries WHERE user_id = :u"), {"u": user.id})
    assert count.scalar_one() == 1
    post_entry(session, user_id=user.id, amount=Decimal("-3.00"), kind="adjustment", key="a:2")
    session.refresh(user)
    assert user.balance == 0


def test_fractional_cents_refused(session: Session) -> None:
    user = make_user(session)
    with pytest.raises(ValueError):
        post_entry(session, user_id=user.id, amount=Decimal("0.001"), kind="prize", key="p")


def test_ledger_is_append_only(session: Session) -> None:
    user = make_user(session)
    fund(session, user.id, "1")
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE ledger_entries SET amount = 100"))
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("DELETE FROM ledger_entries"))


def test_check_finds_a_balance_set_outside_the_ledger(session: Session) -> None:
    user = make_user(session, balance="7")
    problems = check_ledger(session)
    assert len(problems) == 1 and f"user {user.id}" in problems[0]
    session.execute(text("UPDATE users SET balance = 0 WHERE id = :u"), {"u": user.id})
    assert check_ledger(session) == []


@pytest.mark.committed
def test_check_ledger_command(committed: Engine) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "savebucks"), "check-ledger"], capture_output=True, text=True,
            timeout=60,
        )

    assert run().returncode == 0
    with committed.begin() as conn:
        uid = conn.execute(text(
            "INSERT INTO users (email, password_hash, name, balance) "
            "VALUES ('x@example.com', 'x', 'X', 2) RETURNING id")).scalar_one()
    bad = run()
    assert bad.returncode == 1 and f"user {uid}" in bad.stderr
    with committed.begin() as conn:
        conn.execute(text("UPDATE users SET balance = 0"))
