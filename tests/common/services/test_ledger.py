"""The ledger: one posting per cause, balance == sum(ledger), no balance below zero."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from common.models import OutboxEvent, User
from common.services.ledger import Entry, InsufficientFunds, check_ledger, post_entries, post_entry
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import fund


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
    first = post_entry(session, user_id=user.id, amount=Decimal(5), kind="prize", key="prize:x")
    again = post_entry(session, user_id=user.id, amount=Decimal(5), kind="prize", key="prize:x")
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


def _balances(session: Session) -> list[tuple[int, float]]:
    rows = session.query(OutboxEvent).filter_by(event="balance:updated").order_by(OutboxEvent.id)
    return [(e.target_id, e.data["newBalance"]) for e in rows]


def test_post_entries_posts_in_order_for_several_users(session: Session) -> None:
    one, two = make_user(session), make_user(session)
    fund(session, one.id, "10.00")
    session.query(OutboxEvent).delete()
    posted = post_entries(session, [
        Entry(user_id=one.id, amount=Decimal(5), kind="prize", key="k:1"),
        Entry(user_id=two.id, amount=Decimal(3), kind="prize", key="k:2", reason="won"),
        Entry(user_id=one.id, amount=Decimal(-12), kind="adjustment", key="k:3"),
        Entry(user_id=one.id, amount=Decimal(5), kind="prize", key="k:1"),  # repeated in the batch
        Entry(user_id=two.id, amount=Decimal(-1), kind="adjustment", key="k:4"),
    ])
    assert [p and (p.balance, p.change) for p in posted] == [
        (Decimal("15.00"), Decimal(5)), (Decimal("3.00"), Decimal(3)),
        (Decimal("3.00"), Decimal(-12)), None, (Decimal("2.00"), Decimal(-1))]
    assert _balances(session) == [(one.id, 15.0), (two.id, 3.0), (one.id, 3.0), (two.id, 2.0)]
    reasons = [e.data["reason"] for e in session.query(OutboxEvent).order_by(OutboxEvent.id)]
    assert reasons == ["prize", "won", "adjustment", "adjustment"]
    session.expire_all()
    assert (session.get(User, one.id).balance, session.get(User, two.id).balance) == (  # type: ignore[union-attr]
        Decimal("3.00"), Decimal("2.00"))
    again = post_entries(session, [Entry(user_id=one.id, amount=Decimal(5), kind="prize", key="k:1"),
                                   Entry(user_id=two.id, amount=Decimal(1), kind="prize", key="k:5")])
    assert again[0] is None and again[1] is not None and again[1].balance == Decimal("3.00")


def test_post_entries_refuses_the_whole_batch_for_one_uncovered_debit(session: Session) -> None:
    one, two = make_user(session), make_user(session)
    fund(session, one.id, "3.00")
    before = session.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    with pytest.raises(InsufficientFunds):  # a credit later in the batch does not cover an earlier debit
        post_entries(session, [Entry(user_id=one.id, amount=Decimal(-4), kind="adjustment", key="d:1"),
                               Entry(user_id=one.id, amount=Decimal(4), kind="prize", key="d:2")])
    with pytest.raises(InsufficientFunds):  # one user's refusal writes nothing for the other
        post_entries(session, [Entry(user_id=two.id, amount=Decimal(1), kind="prize", key="d:3"),
                               Entry(user_id=one.id, amount=Decimal(1), kind="prize", key="d:4"),
                               Entry(user_id=one.id, amount=Decimal("-4.01"), kind="adjustment", key="d:5")])
    assert session.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one() == 1
    assert session.execute(text("SELECT count(*) FROM outbox")).scalar_one() == before
    posted = post_entries(session, [Entry(user_id=one.id, amount=Decimal(1), kind="prize", key="d:4"),
                                    Entry(user_id=one.id, amount=Decimal(-4), kind="adjustment", key="d:5"),
                                    Entry(user_id=one.id, amount=Decimal(-2), kind="sale_reversal",
                                          key="d:6", allow_debt=True)])
    assert [p and p.balance for p in posted] == [Decimal("4.00"), Decimal("0.00"), Decimal("-2.00")]
    with pytest.raises(InsufficientFunds):
        post_entry(session, user_id=10**9, amount=Decimal(1), kind="prize", key="d:7")
    post_entry(session, user_id=one.id, amount=Decimal(2), kind="prize", key="d:8")


def test_post_entries_of_nothing_does_nothing(session: Session) -> None:
    assert post_entries(session, []) == []


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
    user = make_user(session)
    session.execute(text("UPDATE users SET balance = 7 WHERE id = :u"), {"u": user.id})
    problems = check_ledger(session)
    assert len(problems) == 1 and f"user {user.id}" in problems[0]
    session.execute(text("UPDATE users SET balance = 0 WHERE id = :u"), {"u": user.id})
    assert check_ledger(session) == []


@pytest.mark.committed
def test_check_ledger_command(committed: Engine) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "savebucks"), "check-ledger"], capture_output=True, text=True,
            timeout=60, check=False,
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
