"""The sale approval batch (common/services/sales.py) against concurrent postings, withdrawals,
reversals and credits on the same users, each driven in the bad order on a real PostgreSQL."""
from __future__ import annotations

import itertools
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.ledger import check_ledger, post_entry
from common.services.payments import request_withdrawal
from common.services.sales import approve_due_sales, approve_sale, credit_sale, reverse_sale
from tests.fixtures.factories import make_user
from tests.fixtures.interleave import Background, wait_until_blocked
from tests.fixtures.money_factories import fund, make_offer

pytestmark = pytest.mark.committed
_n = itertools.count()


def _setup(engine: Engine, n_users: int, funds: str = "100") -> list[int]:
    with Session(engine, expire_on_commit=False) as s, s.begin():
        make_offer(s, network="testnet", external_id="o1")
        uids = [make_user(s).id for _ in range(n_users)]
        for u in uids:
            fund(s, u, funds)
    return uids


def _sale(engine: Engine, uid: int, amount: str = "10.00") -> int:
    with Session(engine) as s, s.begin():
        return credit_sale(s, network="testnet", external_id=f"x{next(_n)}", user_id=uid,
                           offer_external_id="o1", amount=Decimal(amount), hold_seconds=0).sale_id


def _check_events(engine: Engine) -> None:
    """Every balance:updated (user, newBalance, change) is a point of the user's ledger running
    sum (per user, ledger ids follow commit order because postings hold the user row)."""
    with Session(engine) as s:
        assert check_ledger(s) == []
        ledger = Counter((r.user_id, r.after, r.amount) for r in s.execute(text(
            "SELECT user_id, amount, sum(amount) OVER (PARTITION BY user_id ORDER BY id) AS after "
            "FROM ledger_entries")))
        events = Counter((r.target_id, Decimal(str(r.data["newBalance"])), Decimal(str(r.data["change"])))
                         for r in s.execute(text("SELECT target_id, data FROM outbox "
                                                 "WHERE event = 'balance:updated'")))
        # fund() entries emit events too, so both sides are complete
        assert events == ledger, (events - ledger, ledger - events)


def test_two_batches_and_a_holder_of_the_user_rows(committed: Engine) -> None:
    a, b = _setup(committed, 2)
    # hold_until order interleaves users: batch 1 gets (a, b), batch 2 gets (b, a)
    for uid in (a, b, b, a):
        _sale(committed, uid)
    holder = Session(committed, expire_on_commit=False)
    holder.begin()
    post_entry(holder, user_id=b, amount=Decimal(-30), kind="adjustment", key="w:b")
    post_entry(holder, user_id=a, amount=Decimal(5), kind="adjustment", key="w:a")
    one = Background(committed, lambda s: approve_due_sales(s, batch=2)).start()
    wait_until_blocked(committed, one.pid)
    two = Background(committed, lambda s: approve_due_sales(s, batch=2)).start()
    wait_until_blocked(committed, two.pid)
    holder.commit()
    holder.close()
    one.join()
    two.join()
    assert one.error is None and two.error is None, (one.error, two.error)
    assert one.result + two.result == 4
    _check_events(committed)


def test_approval_against_withdrawal_both_orders(committed: Engine) -> None:
    (a,) = _setup(committed, 1, funds="10")
    s1, s2 = _sale(committed, a), _sale(committed, a)
    # withdrawal first, approval waits
    w = Session(committed, expire_on_commit=False)
    w.begin()
    request_withdrawal(w, user_id=a, amount=Decimal(10), method="paypal", destination="me@example.com",
                       minimum=Decimal(5), auto_pay_limit=Decimal(0))
    ap = Background(committed, lambda s: approve_sale(s, sale_id=s1)).start()
    wait_until_blocked(committed, ap.pid)
    w.commit()
    w.close()
    ap.join()
    assert ap.error is None and ap.result is True
    # approval first, withdrawal of more than the old balance waits and sees the credit
    ap2 = Session(committed, expire_on_commit=False)
    ap2.begin()
    assert approve_sale(ap2, sale_id=s2)
    wd = Background(committed, lambda s: request_withdrawal(
        s, user_id=a, amount=Decimal(7), method="paypal", destination="me@example.com",
        minimum=Decimal(5), auto_pay_limit=Decimal(0))).start()
    wait_until_blocked(committed, wd.pid)
    ap2.commit()
    ap2.close()
    wd.join()
    assert wd.error is None, wd.error
    _check_events(committed)
    with Session(committed) as s:
        assert s.execute(text("SELECT balance, pending_balance FROM users WHERE id = :u"),
                         {"u": a}).one() == (Decimal("7.00"), Decimal("0.00"))


def test_approval_against_reversal_both_orders(committed: Engine) -> None:
    (a,) = _setup(committed, 1, funds="1")
    s1, s2 = _sale(committed, a), _sale(committed, a)
    # reversal (pending -> rejected) first; the approval waits on the sale row and finds nothing
    r = Session(committed, expire_on_commit=False)
    r.begin()
    assert reverse_sale(r, sale_id=s1) == "rejected"
    ap = Background(committed, lambda s: approve_sale(s, sale_id=s1)).start()
    wait_until_blocked(committed, ap.pid)
    r.commit()
    r.close()
    ap.join()
    assert ap.error is None and ap.result is False
    # approval first; the reversal waits, then reverses the approved sale with a debit
    ap2 = Session(committed, expire_on_commit=False)
    ap2.begin()
    assert approve_sale(ap2, sale_id=s2)
    rv = Background(committed, lambda s: reverse_sale(s, sale_id=s2)).start()
    wait_until_blocked(committed, rv.pid)
    ap2.commit()
    ap2.close()
    rv.join()
    assert rv.error is None and rv.result == "reversed", (rv.error, rv.result)
    _check_events(committed)
    with Session(committed) as s:
        assert s.execute(text("SELECT balance, pending_balance FROM users WHERE id = :u"),
                         {"u": a}).one() == (Decimal("1.00"), Decimal("0.00"))


def test_pending_balance_moves_survive_a_concurrent_credit_and_reject(committed: Engine) -> None:
    (a,) = _setup(committed, 1)
    _sale(committed, a), _sale(committed, a)
    s3 = _sale(committed, a)
    holder = Session(committed, expire_on_commit=False)
    holder.begin()
    credit_sale(holder, network="testnet", external_id="late", user_id=a, offer_external_id="o1",
                amount=Decimal("10.00"), hold_seconds=3600)  # +7 pending, holds the user row
    assert reverse_sale(holder, sale_id=s3) == "rejected"  # -7 pending, holds s3
    batch = Background(committed, lambda s: approve_due_sales(s)).start()
    wait_until_blocked(committed, batch.pid)
    holder.commit()
    holder.close()
    batch.join()
    assert batch.error is None and batch.result == 2
    _check_events(committed)
    with Session(committed) as s:
        assert s.execute(text("SELECT balance, pending_balance FROM users WHERE id = :u"),
                         {"u": a}).one() == (Decimal("114.00"), Decimal("7.00"))
