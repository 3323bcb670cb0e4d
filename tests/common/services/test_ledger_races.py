"""Races on the ledger posting rule (common/services/ledger.py), driven in the bad order on a real
PostgreSQL: a key committed by another transaction while a posting waits for its user."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.ledger import Entry, InsufficientFunds, check_ledger, post_entries, post_entry
from tests.fixtures.factories import make_user
from tests.fixtures.interleave import Background, wait_until_blocked
from tests.fixtures.money_factories import fund

pytestmark = pytest.mark.committed


def _user(engine: Engine, funds: str | None = None) -> int:
    with Session(engine, expire_on_commit=False) as s, s.begin():
        uid = make_user(s).id
        if funds:
            fund(s, uid, funds)
    return uid


def _state(engine: Engine, uid: int) -> tuple[Decimal, Decimal, list[str]]:
    with Session(engine) as s:
        bal = s.execute(text("SELECT balance FROM users WHERE id = :u"), {"u": uid}).scalar_one()
        total = s.execute(text("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE user_id = :u"),
                          {"u": uid}).scalar_one()
        return bal, total, check_ledger(s)


def test_list_with_credit_and_debit_goes_below_zero_when_its_credit_key_posts_concurrently(
        committed: Engine) -> None:
    """T1 posts [K +100, X -100] (uncommitted). T2 posts [K +100, D -100]: its snapshot misses K,
    so ``low`` counts K's +100 as covering D; after T1 commits, K is skipped by ON CONFLICT but D
    is still appended, with no credit behind it."""
    uid = _user(committed)
    t1 = Session(committed, expire_on_commit=False)
    t1.begin()
    post_entries(t1, [Entry(uid, Decimal(100), "adjustment", "K"),
                      Entry(uid, Decimal(-100), "adjustment", "X")])
    t2 = Background(committed, lambda s: post_entries(s, [
        Entry(uid, Decimal(100), "adjustment", "K"),
        Entry(uid, Decimal(-100), "adjustment", "D")])).start()
    wait_until_blocked(committed, t2.pid)
    t1.commit()
    t1.close()
    t2.join()
    balance, ledger, problems = _state(committed, uid)
    # No debit below zero without allow_debt: D is refused (K posted by T1 covers only X).
    assert isinstance(t2.error, InsufficientFunds), (t2.result, t2.error)
    assert (balance, ledger, problems) == (Decimal("0.00"), Decimal("0.00"), [])


def test_replayed_debit_racing_its_original_is_a_repeat_not_insufficient_funds(
        committed: Engine) -> None:
    """A debit key posted by T1 (uncommitted) and replayed by T2: after T1 commits, T2 should
    answer None (a repeat). The owner lock re-checks the balance AFTER T1's debit, while ``fresh``
    (older snapshot) still counts the key as new: InsufficientFunds."""
    uid = _user(committed, "150")
    t1 = Session(committed, expire_on_commit=False)
    t1.begin()
    post_entry(t1, user_id=uid, amount=Decimal(-100), kind="adjustment", key="hold:1")
    t2 = Background(committed, lambda s: post_entry(
        s, user_id=uid, amount=Decimal(-100), kind="adjustment", key="hold:1")).start()
    wait_until_blocked(committed, t2.pid)
    t1.commit()
    t1.close()
    t2.join()
    assert t2.error is None, f"replay raised {t2.error!r} instead of returning None"
    assert t2.result is None
