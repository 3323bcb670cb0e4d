"""Daily rollups equal a direct aggregate over the raw rows; a fill that dies half way, or a day
filled twice, never double counts; the analytics endpoints' payloads follow docs/api.md "Admin"."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from common.models import AnalyticsDay, LedgerEntry, Payment, Sale, User
from common.services import analytics
from tests.fixtures.admin import admin, admin_headers, api  # noqa: F401
from tests.fixtures.money_factories import make_offer

DAYS = 12


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
        seconds=rng.randrange(86_400))


def _history(session: Session, seed: int) -> dict[dt.date, dict[str, Any]]:
    """Random users, sales, ledger entries and payments over the last DAYS closed days, and the
    expected figures of each day computed here in Python from the same rows."""
    rng = random.Random(seed)
    today = analytics.today()
    # Later events stay in closed days (the live "today" is tested through the endpoints).
    last = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC) - dt.timedelta(seconds=1)

    def later(ts: dt.datetime, hours: int) -> dt.datetime:
        return min(ts + dt.timedelta(hours=rng.randrange(0, hours)), last)

    days = [today - dt.timedelta(days=d) for d in range(DAYS, 0, -1)]
    expect: dict[dt.date, Counter[str]] = defaultdict(Counter)
    active: dict[dt.date, set[int]] = defaultdict(set)
    offer_id = make_offer(session)
    users = []
    for n in range(30):
        created = _at(rng.choice(days[:4]), rng)
        uid = session.execute(insert(User).values(
            email=f"hist{seed}-{n}@example.com", name=f"H {n}", password_hash="x",
            created_at=created).returning(User.id)).scalar_one()
        users.append(uid)
        expect[created.date()]["signups"] += 1
    for n in range(150):
        uid, day = rng.choice(users), rng.choice(days[4:])
        created = _at(day, rng)
        status = rng.choice(["pending", "approved", "rejected", "reversed"])
        commission = Decimal(rng.randrange(1, 5000)) / 100
        decided = later(created, 30) if status != "pending" else None
        sale_id = session.execute(insert(Sale).values(
            user_id=uid, offer_id=offer_id, network="testnet", external_id=f"h{seed}-{n}",
            sale_amount=commission, commission_amount=commission, status=status,
            hold_until=created, created_at=created, decided_at=decided).returning(Sale.id)).scalar_one()
        expect[day]["sales_created"] += 1
        active[day].add(uid)
        if status in ("approved", "reversed"):
            credited = later(created, 20)
            session.execute(insert(LedgerEntry).values(
                user_id=uid, amount=commission, kind="sale_credit", idempotency_key=f"sc:{sale_id}",
                created_at=credited))
            expect[credited.date()]["revenue"] += commission
            expect[credited.date()]["sales_approved"] += 1
        if status == "reversed":
            session.execute(insert(LedgerEntry).values(
                user_id=uid, amount=-commission, kind="sale_reversal",
                idempotency_key=f"sr:{sale_id}", created_at=decided))
            expect[decided.date()]["reversed_amount"] += commission
        if status in ("rejected", "reversed"):
            expect[decided.date()][f"sales_{status}"] += 1
    for _ in range(40):
        uid, day = rng.choice(users), rng.choice(days[4:])
        created = _at(day, rng)
        status = rng.choice(["pending", "processing", "paid", "failed", "cancelled"])
        updated = later(created, 30)
        amount = Decimal(rng.randrange(500, 9000)) / 100
        session.execute(insert(Payment).values(
            user_id=uid, amount=amount, method="paypal", destination="d@x.example", status=status,
            created_at=created, updated_at=updated))
        expect[day]["payouts_requested"] += 1
        active[day].add(uid)
        if status in ("paid", "failed", "cancelled"):
            expect[updated.date()][f"payouts_{status}"] += 1
        if status == "paid":
            expect[updated.date()]["payouts_paid_amount"] += amount
    for day, who in active.items():
        expect[day]["active_users"] = len(who)
    return {d: {f: expect[d][f] for f in analytics.FIELDS} for d in days}


@contextmanager
def _tx(session: Session) -> Iterator[Session]:
    with session.begin_nested():
        yield session


def _rows(session: Session) -> dict[dt.date, dict[str, Any]]:
    return {r.day: {f: getattr(r, f) for f in analytics.FIELDS}
            for r in session.scalars(select(AnalyticsDay))}


def _closed(expected: dict[dt.date, dict[str, Any]], rows: dict[dt.date, dict[str, Any]]) -> None:
    for day, figures in expected.items():
        assert rows.get(day, {f: 0 for f in analytics.FIELDS}) == figures, day


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_a_direct_aggregate(session: Session, seed: int) -> None:
    expected = _history(session, seed)
    assert analytics.fill_pending_days(lambda: _tx(session)) > 0
    assert analytics.filled_through(session) == analytics.today() - dt.timedelta(days=1)
    _closed(expected, _rows(session))
    assert analytics.fill_pending_days(lambda: _tx(session)) == 0
    totals = analytics.window_sums(session, first=None)
    assert totals["signups"] == sum(f["signups"] for f in expected.values())
    assert totals["revenue"] == sum(f["revenue"] for f in expected.values())


def test_a_fill_that_dies_half_way_counts_nothing_twice(session: Session) -> None:
    expected = _history(session, 7)
    day = min(expected)
    analytics.fill_pending_days(lambda: _tx(session), limit=3)
    done = analytics.filled_through(session)

    class Crash(Exception):
        pass

    # The next day's row is written, then the process dies before the state moves: rolled back.
    with pytest.raises(Crash), session.begin_nested():
        analytics.fill_day(session, day=done + dt.timedelta(days=1), advance=False)
        raise Crash
    assert analytics.filled_through(session) == done
    # A row that did commit without its state (an older fill) is redone absolutely, not added.
    analytics.fill_day(session, day=done + dt.timedelta(days=1), advance=False)
    analytics.fill_pending_days(lambda: _tx(session))
    # And a backfill from the first day recomputes everything to the same figures.
    analytics.reset_fill(session, since=day)
    analytics.fill_pending_days(lambda: _tx(session))
    _closed(expected, _rows(session))


async def test_endpoints_payloads(api: TestClient, session: Session, admin: User,
                                  admin_headers: dict[str, str]) -> None:
    expected = _history(session, 11)
    unfilled = (await (await api.get("/api/admin/analytics/dashboard", headers=admin_headers)).json())
    live_revenue = (await (await api.get("/api/admin/analytics/revenue?period=30",
                                         headers=admin_headers)).json())["data"]
    analytics.fill_pending_days(lambda: _tx(session))
    resp = await api.get("/api/admin/analytics/dashboard", headers=admin_headers)
    data = (await resp.json())["data"]
    assert data == unfilled["data"]  # all live before the first fill, the same figures after
    assert set(data) == {"stats", "recent_activity"}
    assert set(data["stats"]) == {"total_users", "active_users", "total_offers", "total_revenue",
                                  "pending_payments", "risky_withdrawals"}
    assert set(data["recent_activity"]) == {"new_users", "recent_sales", "recent_clicks",
                                            "pending_approvals", "referral_earnings"}
    net = sum(f["revenue"] - f["reversed_amount"] for f in expected.values())
    assert Decimal(str(data["stats"]["total_revenue"])) == net
    assert data["stats"]["total_users"] == 31  # the history's users and the admin (today)
    last7 = [analytics.today() - dt.timedelta(days=d) for d in range(1, 7)]
    assert data["recent_activity"]["recent_sales"] == sum(
        expected[d]["sales_created"] for d in last7)
    revenue = (await (await api.get("/api/admin/analytics/revenue?period=30",
                                    headers=admin_headers)).json())["data"]
    assert len(revenue) == 30 and revenue[-1]["date"] == analytics.today().isoformat()
    assert revenue == live_revenue
    by_day = {r["date"]: Decimal(str(r["revenue"])) for r in revenue}
    for day, f in expected.items():
        assert by_day[day.isoformat()] == f["revenue"] - f["reversed_amount"]
    users = (await (await api.get("/api/admin/analytics/users?period=14",
                                  headers=admin_headers)).json())["data"]
    assert len(users["days"]) == 14 and set(users["days"][0]) == {"date", "signups", "active"}
    assert users["totals"]["users"] == 31
    assert users["totals"]["byStatus"] == {"active": 31, "suspended": 0, "banned": 0}
    assert (await api.get("/api/admin/analytics/revenue?period=0", headers=admin_headers)).status == 400
