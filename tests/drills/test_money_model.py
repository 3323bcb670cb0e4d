"""The money rules as a model, checked against the real services and database after every step.

Hypothesis drives credits, duplicate and out-of-order postbacks, reversals before and after
approval, admin approvals and rejections, the beat's batch, withdrawals, cancellations and the
payout chains' steps in any order (two chains on one payment, leases expiring, sweeps, a provider
that declines, fails transiently or times out after paying). After every step: every balance
is what the model says, ``balance == sum(ledger)`` (``check-ledger``), no negative balance but a
recorded debt, and no payment the provider paid is failed or cancelled. At the end every payment
reaches a final state, paid exactly when the provider paid it. Referrals: the first user signed up
with a third's code (a member who only earns referrals) and the second with the first's, so every
approved commission pays its owner's referrer a referral (not the referrer's referrer; nothing
once a pair has asked for a payout to the same destination), and reversals take it back.

``SB_DRILL=long`` runs many more and longer examples than CI's short form.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine, text

from common.config import Settings
from common.errors import Conflict, InvalidInput, NotFound
from common.money import to_cents
from common.payouts import PayoutResult
from common.services.admin_queue import request_sale_decision
from common.services.ledger import check_ledger
from common.services.payments import PayoutJob, cancel_payment, request_withdrawal, stuck_payments
from common.services.sales import (
    UserMismatch,
    approve_due_sales,
    approve_sale,
    credit_sale,
    reverse_callback,
)
from common.uow import SyncContext
from tests.conftest import truncate_all
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import make_offer
from workers.tasks.payouts import attempt, give_up, record, take

LONG = os.environ.get("SB_DRILL") == "long"
TXNS = st.sampled_from([f"t{i}" for i in range(6)])
CENTS = st.integers(min_value=1, max_value=4_000)
DESTINATIONS = st.sampled_from(["me@example.com", "flaky@example.com", "decline@example.com",
                                "timeout@example.com"])
FINAL = {"paid", "failed", "cancelled"}
MOVES = {"pending": {"pending", "processing", "failed", "cancelled"},
         "processing": {"processing", "paid", "failed"}}
AUDIT = {"actor_id": None, "ip": None, "trace_id": None}


@dataclass
class Model:
    """What the money should be: sale states by transaction id, balances, payments."""

    users: list[int] = field(default_factory=list)
    sales: dict[str, tuple[int, str, Decimal]] = field(default_factory=dict)  # user, status, commission
    balances: dict[int, Decimal] = field(default_factory=dict)
    payments: dict[int, tuple[int, Decimal, str]] = field(default_factory=dict)  # user, amount, status
    referrer: dict[int, int] = field(default_factory=dict)  # user: who referred them
    referrals: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # txn: referrer, paid
    destinations: dict[int, set[str]] = field(default_factory=dict)  # user: payouts asked for


class MoneyMachine(RuleBasedStateMachine):
    ctx: SyncContext

    def __init__(self) -> None:
        super().__init__()
        truncate_all(self.ctx.engine)
        self.ctx.redis.flushdb()
        self.model = Model()
        with self.ctx.transaction() as session:
            make_offer(session, network="testnet", external_id="o1", user_share=Decimal(1))
            top = make_user(session).id
            first = make_user(session, referred_by=top).id
            self.model.users = [first, make_user(session, referred_by=first).id]
        self.model.referrer = {first: top, self.model.users[1]: first}
        self.model.balances = {u: Decimal(0) for u in (top, *self.model.users)}
        self.model.destinations = {u: set() for u in (top, *self.model.users)}
        self.share = self.ctx.settings.referral_share
        self.jobs: list[PayoutJob] = []
        self.results: list[tuple[PayoutJob, PayoutResult]] = []

    # --- sales -----------------------------------------------------------------------------

    @rule(txn=TXNS, who=st.integers(0, 1), cents=CENTS)
    def credit(self, txn: str, who: int, cents: int) -> None:
        user = self.model.users[who]
        try:
            with self.ctx.transaction() as session:
                credit_sale(session, network="testnet", external_id=txn, user_id=user,
                            offer_external_id="o1", amount=Decimal(cents) / 100, hold_seconds=0)
        except UserMismatch:  # another user's transaction id: refused, nothing changes
            assert self.model.sales[txn][0] != user
            return
        self.model.sales.setdefault(txn, (user, "pending", Decimal(cents) / 100))

    @rule(txn=TXNS, who=st.integers(0, 1), cents=CENTS)
    def reverse(self, txn: str, who: int, cents: int) -> None:
        user = self.model.users[who]
        try:
            with self.ctx.transaction() as session:
                reverse_callback(session, network="testnet", external_id=txn, user_id=user,
                                 offer_external_id="o1", amount=Decimal(cents) / 100)
        except UserMismatch:
            assert self.model.sales[txn][0] != user
            return
        if txn not in self.model.sales:
            self.model.sales[txn] = (user, "rejected", Decimal(cents) / 100)
            return
        owner, status, amount = self.model.sales[txn]
        if status == "pending":
            self.model.sales[txn] = (owner, "rejected", amount)
        elif status == "approved":
            self.model.sales[txn] = (owner, "reversed", amount)
            self.model.balances[owner] -= amount
            if txn in self.model.referrals:
                referrer, paid = self.model.referrals[txn]
                self.model.balances[referrer] -= paid
            self._observe_payments()  # a debt fails the pending withdrawals of whom it hits

    def _approve_model(self, txn: str) -> None:
        owner, status, amount = self.model.sales[txn]
        if status == "pending":
            self.model.sales[txn] = (owner, "approved", amount)
            self.model.balances[owner] += amount
            referrer = self.model.referrer[owner]
            shared = self.model.destinations[referrer] & self.model.destinations[owner]
            paid = to_cents(amount * self.share)
            if not shared and paid > 0:
                self.model.referrals[txn] = (referrer, paid)
                self.model.balances[referrer] += paid

    @rule(txn=TXNS)
    def admin_approves(self, txn: str) -> None:
        sale_id = self._sale_id(txn)
        if sale_id is None:
            return
        with self.ctx.transaction() as session:
            approve_sale(session, sale_id=sale_id)
        self._approve_model(txn)

    @rule(txn=TXNS)
    def admin_rejects(self, txn: str) -> None:
        sale_id = self._sale_id(txn)
        if sale_id is None:
            return
        try:
            with self.ctx.transaction() as session:
                request_sale_decision(session, sale_id=sale_id, decision="reject", audit=AUDIT)
        except Conflict:
            assert self.model.sales[txn][1] != "pending"
            return
        owner, status, amount = self.model.sales[txn]
        assert status == "pending"
        self.model.sales[txn] = (owner, "rejected", amount)

    @rule()
    def beat_approves_due_sales(self) -> None:
        with self.ctx.transaction() as session:
            approve_due_sales(session)
        for txn in list(self.model.sales):
            self._approve_model(txn)

    # --- withdrawals -------------------------------------------------------------------------

    @rule(who=st.integers(0, 1), cents=st.integers(400, 6_000), destination=DESTINATIONS)
    def withdraw(self, who: int, cents: int, destination: str) -> None:
        user, amount = self.model.users[who], Decimal(cents) / 100
        try:
            with self.ctx.transaction() as session:
                payment = request_withdrawal(
                    session, user_id=user, amount=amount, method="paypal", destination=destination,
                    minimum=Decimal(5), auto_pay_limit=Decimal(100))
        except InvalidInput:
            assert amount < 5 or amount > self.model.balances[user]
            return
        assert 5 <= amount <= self.model.balances[user]
        self.model.balances[user] -= amount
        self.model.destinations[user].add(destination)
        self.model.payments[payment["id"]] = (user, amount, "pending")

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        if not self.model.payments:
            return
        payment_id = data.draw(st.sampled_from(sorted(self.model.payments)))
        user = self.model.payments[payment_id][0]
        try:
            with self.ctx.transaction() as session:
                cancel_payment(session, user_id=user, payment_id=payment_id)
        except (Conflict, NotFound):
            pass
        self._observe_payments()

    # --- payout chains -----------------------------------------------------------------------

    @rule(data=st.data(), own=st.booleans())
    def chain_takes(self, data: st.DataObject, own: bool) -> None:
        if not self.model.payments:
            return
        payment_id = data.draw(st.sampled_from(sorted(self.model.payments)))
        mine = [j.token for j in self.jobs if j.payment_id == payment_id]
        job = take(self.ctx, payment_id, mine[-1] if own and mine else None)
        if job is not None:
            self.jobs.append(job)
        self._observe_payments()

    @rule(data=st.data())
    def chain_calls_provider(self, data: st.DataObject) -> None:
        if not self.jobs:
            return
        job = data.draw(st.sampled_from(self.jobs))
        outcome = attempt(self.ctx, job)
        if not isinstance(outcome, Exception):
            self.results.append((job, outcome))

    @rule(data=st.data())
    def chain_records(self, data: st.DataObject) -> None:
        if not self.results:
            return
        job, result = data.draw(st.sampled_from(self.results))
        record(self.ctx, job, result)
        self._observe_payments()

    @rule(data=st.data())
    def chain_gives_up(self, data: st.DataObject) -> None:
        if not self.jobs:
            return
        give_up(self.ctx, data.draw(st.sampled_from(self.jobs)))
        self._observe_payments()

    @rule(data=st.data())
    def lease_expires(self, data: st.DataObject) -> None:
        if not self.model.payments:
            return
        self.lease_expires_now(data.draw(st.sampled_from(sorted(self.model.payments))))

    @rule()
    def sweep(self) -> None:
        with self.ctx.transaction() as session:
            stuck_payments(session, older_than=0)

    # --- checks ------------------------------------------------------------------------------

    def _sale_id(self, txn: str) -> int | None:
        with self.ctx.engine.connect() as conn:
            return conn.execute(text("SELECT id FROM sales WHERE external_id = :t"),
                                {"t": txn}).scalar()

    def _observe_payments(self) -> None:
        """Learn each payment's new state (the provider decides paid or failed) and check that
        it moved only along the state machine; failed and cancelled give the hold back."""
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, status FROM payments")).all()
        for payment_id, status in rows:
            user, amount, before = self.model.payments[payment_id]
            if before in FINAL:
                assert status == before, f"payment {payment_id}: {before} -> {status}"
                continue
            assert status in MOVES[before], f"payment {payment_id}: {before} -> {status}"
            if status in ("failed", "cancelled"):
                self.model.balances[user] += amount
            self.model.payments[payment_id] = (user, amount, status)

    @invariant()
    def money_adds_up(self) -> None:
        with self.ctx.sessions() as session:
            assert check_ledger(session) == []
            balances = dict(session.execute(text("SELECT id, balance FROM users")).all())
            sales = dict(session.execute(text("SELECT external_id, status FROM sales")).all())
        assert balances == self.model.balances
        assert sales == {txn: status for txn, (_, status, _) in self.model.sales.items()}
        reversed_txns = {t for t, s in self.model.sales.items() if s[1] == "reversed"}
        for user, balance in balances.items():
            if balance < 0:  # a debt: a reversal of their sale, or of a referral it paid them
                assert any(self.model.sales[t][0] == user
                           or self.model.referrals.get(t, (None,))[0] == user
                           for t in reversed_txns)

    def teardown(self) -> None:
        """Every payment ends final, paid exactly when the provider paid it."""
        for _ in range(20):
            open_ids = [p for p, (_, _, s) in self.model.payments.items() if s not in FINAL]
            if not open_ids:
                break
            for payment_id in open_ids:
                self.lease_expires_now(payment_id)
                job = take(self.ctx, payment_id)
                self._observe_payments()
                if job is None:
                    continue
                outcome = attempt(self.ctx, job)
                if isinstance(outcome, Exception):
                    give_up(self.ctx, job)
                else:
                    record(self.ctx, job, outcome)
            self._observe_payments()
        assert all(s in FINAL for _, _, s in self.model.payments.values())
        with self.ctx.engine.connect() as conn:
            provider = dict(conn.execute(text(
                "SELECT idempotency_key, status FROM sandbox_payouts")).all())
        for payment_id, (_, _, status) in self.model.payments.items():
            assert (provider.get(f"payment:{payment_id}") == "paid") == (status == "paid")
        self.money_adds_up()

    def lease_expires_now(self, payment_id: int) -> None:
        with self.ctx.engine.begin() as conn:
            conn.execute(text("UPDATE payments SET lease_until = now() - interval '1 second' "
                              "WHERE id = :id AND status = 'processing'"), {"id": payment_id})


@pytest.mark.committed
def test_money_model(committed: Engine, settings: Settings, redis_sync: redis.Redis) -> None:
    MoneyMachine.ctx = SyncContext.create(
        settings.model_copy(update={"payout_sandbox_latency_ms": 0}), engine=committed,
        client=redis_sync)
    run_state_machine_as_test(MoneyMachine, settings=hsettings(
        max_examples=300 if LONG else 25, stateful_step_count=60 if LONG else 30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
