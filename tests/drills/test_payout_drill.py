"""Payout drill: two real worker processes paying a batch of withdrawals while the recovery sweep
runs every half second with a one-second lease, and a worker is SIGKILLed and restarted every
two seconds (5 times; 40 in the long form). The provider is slow (its calls outlive leases, so stalled chains meet the
chains that took over), flaky, declines some and times out after paying others.

Every payment must end final, paid exactly when the provider paid it, and every balance must add
up. CI runs the short form (8 withdrawals); ``SB_DRILL=long`` pays 60.
"""

from __future__ import annotations

import itertools
import os
import time
from decimal import Decimal

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.ledger import check_ledger
from common.services.payments import request_withdrawal
from common.taskqueue import enqueue
from tests.fixtures.money_factories import make_funded_user
from tests.fixtures.processes import kill, start_worker

LONG = os.environ.get("SB_DRILL") == "long"
PAYMENTS = 60 if LONG else 8
KILLS = 40 if LONG else 5
DEADLINE = 400 if LONG else 150
# Chains that give up often (transient errors, two attempts) while the sweep starts others: the
# interleaving that paid twice when a chain released funds on the provider's "never paid".
# The provider's calls (0.5 to 1.5 x 900 ms) often outlive the one-second lease, so stalled chains
# meet the chains that took over.
WORKER_ENV = {"PAYOUT_STUCK_SECONDS": "1", "PAYOUT_SANDBOX_LATENCY_MS": "900",
              "PAYOUT_SANDBOX_ERROR_RATE": "0.25", "PAYOUT_MAX_ATTEMPTS": "2"}
DESTINATIONS = ["me@example.com", "flaky@example.com", "decline@example.com", "timeout@example.com"]


def _open(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT p.id, p.status, p.destination, p.lease_token, p.lease_until < now() AS expired, "
            "s.status AS provider FROM payments p "
            "LEFT JOIN sandbox_payouts s ON s.idempotency_key = 'payment:' || p.id "
            "WHERE p.status NOT IN ('paid', 'failed', 'cancelled')")).all())


def _open_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM payments WHERE status NOT IN ('paid', 'failed', 'cancelled')"
        )).scalar_one()


@pytest.mark.committed
@pytest.mark.timeout(DEADLINE + 60)
def test_payouts_survive_kills_with_the_sweep_running(committed: Engine, redis_sync: redis.Redis) -> None:
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, "5000")
        ids = [request_withdrawal(
            session, user_id=user.id, amount=Decimal(10), method="paypal",
            destination=DESTINATIONS[i % len(DESTINATIONS)], minimum=Decimal(5),
            auto_pay_limit=Decimal(100))["id"] for i in range(PAYMENTS)]
    workers = [start_worker(f"drill{n}", **WORKER_ENV) for n in range(2)]
    names = itertools.count(2)
    try:
        for payment_id in ids:
            enqueue("payouts.pay", payment_id)
        deadline = time.monotonic() + DEADLINE
        tick = 0
        while _open_count(committed):
            assert time.monotonic() < deadline, f"not final in time: {_open(committed)}"
            enqueue("payouts.recover", 0)
            tick += 1
            if tick % 4 == 0 and tick // 4 <= KILLS:
                # A crash: one worker dies wherever it is; a new one takes its place.
                victim = tick // 4 % len(workers)
                kill(workers[victim])
                workers[victim] = start_worker(f"drill{next(names)}", **WORKER_ENV)
            time.sleep(0.5)
    finally:
        for worker in workers:
            kill(worker)
    with committed.connect() as conn:
        rows = conn.execute(text(
            "SELECT p.id, p.status, s.status AS provider FROM payments p "
            "LEFT JOIN sandbox_payouts s ON s.idempotency_key = 'payment:' || p.id")).all()
        balance = conn.execute(text("SELECT balance FROM users WHERE id = :id"),
                               {"id": user.id}).scalar_one()
    assert all((r.provider == "paid") == (r.status == "paid") for r in rows), rows
    paid = sum(1 for r in rows if r.status == "paid")
    assert balance == Decimal(5000) - 10 * paid
    with Session(committed) as session:
        assert check_ledger(session) == []
