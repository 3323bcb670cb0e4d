"""Leaderboards: UTC buckets across day, ISO-week, month and year boundaries; ties by earlier
signup; reversals move users down; the rebuild equals the incremental state; prizes pay once;
``leaderboard:updated`` is throttled."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from decimal import Decimal

import pytest
import redis
from aiohttp.test_utils import TestClient
from freezegun import freeze_time
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import LedgerEntry, OutboxEvent, Sale, User
from common.services import leaderboard as lb
from common.services.sales import approve_sale, credit_sale, reverse_sale
from tests.fixtures.admin import api  # noqa: F401
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money_factories import make_offer

UTC = dt.UTC
Commit = Callable[[Session], None]


@pytest.mark.parametrize(("before", "after", "same"), [
    # A day boundary inside an ISO week and a month.
    ("2026-11-24T23:59:59", "2026-11-25T00:00:00", {"weekly", "monthly", "all_time"}),
    # Sunday -> Monday: a new ISO week, same month.
    ("2026-11-29T23:59:59", "2026-11-30T00:00:00", {"monthly", "all_time"}),
    # A month boundary inside an ISO week.
    ("2026-11-30T23:59:59", "2026-12-01T00:00:00", {"weekly", "all_time"}),
    # A year boundary inside ISO week 2026-W53.
    ("2026-12-31T23:59:59", "2027-01-01T00:00:00", {"weekly", "all_time"}),
])
def test_buckets_follow_utc_boundaries(before: str, after: str, same: set[str]) -> None:
    a, b = (dt.datetime.fromisoformat(x).replace(tzinfo=UTC) for x in (before, after))
    for period in lb.PERIODS:
        assert (lb.bucket(period, a) == lb.bucket(period, b)) == (period in same), period
        for at in (a, b):
            lo, hi = lb.bounds(period, lb.bucket(period, at))
            assert lo <= at < hi
    assert lb.bucket("weekly", dt.datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"
    assert lb.previous_bucket("monthly", dt.datetime(2027, 1, 5, tzinfo=UTC)) == "2026-12"


def _approved_sale(commit: Commit, session: Session, user: User, amount: str, at: dt.datetime,
                   offer: int) -> int:
    """An approved sale decided at ``at``, with its credit, recorded as an approval is."""
    sale_id = session.execute(insert(Sale).values(
        user_id=user.id, offer_id=offer, network="testnet", external_id=f"x{random.random()}",
        sale_amount=Decimal(amount), commission_amount=Decimal(amount), status="approved",
        hold_until=at, created_at=at, decided_at=at).returning(Sale.id)).scalar_one()
    session.execute(insert(LedgerEntry).values(
        user_id=user.id, amount=Decimal(amount), kind="sale_credit",
        idempotency_key=f"sale_credit:{sale_id}", created_at=at))
    # The entry is back-dated, which post_entry cannot do; the balance moves with it all the same.
    session.execute(update(User).where(User.id == user.id)
                    .values(balance=User.balance + Decimal(amount)))
    lb.record_approvals(session, sale_ids=[sale_id])
    commit(session)
    return sale_id


def _board(client: redis.Redis, settings: Settings, period: str, name: str) -> list[tuple[int, float]]:
    return [(lb.user_of(m), s) for m, s in
            client.zrevrange(lb.board_key(settings, period, name), 0, -1, withscores=True)]


async def _read(api: TestClient, settings: Settings, user: User, period: str) -> dict:
    resp = await api.get(f"/api/leaderboard?period={period}&limit=10",
                         headers=auth_headers(settings, user))
    assert resp.status == 200
    return (await resp.json())["data"]


async def test_week_boundary_with_a_frozen_clock(commit: Commit, client: TestClient, session: Session,
                                                 settings: Settings, redis_sync: redis.Redis) -> None:
    offer = make_offer(session)
    sunday, monday = make_user(session), make_user(session)
    _approved_sale(commit, session, sunday, "4.00", dt.datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC), offer)
    _approved_sale(commit, session, monday, "3.00", dt.datetime(2026, 11, 30, 0, 0, 0, tzinfo=UTC), offer)
    with freeze_time("2026-11-29T23:59:59Z", real_asyncio=True):
        data = await _read(client, settings, monday, "weekly")
        assert [e["userId"] for e in data["entries"]] == [sunday.id]
        assert data["me"] == {"rank": None, "score": 0}
        assert data["generatedAt"] == "2026-11-29T23:59:59.000Z"
    with freeze_time("2026-11-30T00:00:01Z", real_asyncio=True):
        data = await _read(client, settings, monday, "weekly")
        assert data["entries"] == [{"rank": 1, "userId": monday.id, "name": monday.name,
                                    "avatar": None, "score": 3}]
        assert data["me"] == {"rank": 1, "score": 3}
        monthly = await _read(client, settings, monday, "monthly")  # both in November
        assert [e["userId"] for e in monthly["entries"]] == [sunday.id, monday.id]
        assert monthly["me"] == {"rank": 2, "score": 3}
        everyone = await _read(client, settings, monday, "all_time")
        assert [e["score"] for e in everyone["entries"]] == [4, 3]
    with freeze_time("2026-12-01T00:00:00Z", real_asyncio=True):
        assert (await _read(client, settings, monday, "monthly"))["entries"] == []
    with freeze_time("2026-11-29T12:00:00Z", real_asyncio=True):
        assert (await _read(client, settings, monday, "daily"))["entries"][0]["userId"] == sunday.id


async def test_ties_rank_by_earlier_signup(commit: Commit, client: TestClient, session: Session, settings: Settings,
                                           redis_sync: redis.Redis) -> None:
    offer = make_offer(session)
    first, second, third = (make_user(session) for _ in range(3))
    now = dt.datetime.now(UTC)
    for user in (third, second, first):  # approved in the opposite order
        _approved_sale(commit, session, user, "2.50", now, offer)
    data = await _read(client, settings, second, "daily")
    assert [(e["rank"], e["userId"]) for e in data["entries"]] == [
        (1, first.id), (2, second.id), (3, third.id)]
    assert data["me"] == {"rank": 2, "score": 2.5}
    assert (await client.get("/api/leaderboard")).status == 401


def _credit_and_approve(commit: Commit, session: Session, user: User, amount: str) -> int:
    sale = credit_sale(session, network="testnet", external_id=f"r{random.random()}",
                       user_id=user.id, offer_external_id="lb-offer", amount=Decimal(amount),
                       hold_seconds=0).sale_id
    approve_sale(session, sale_id=sale)
    commit(session)
    return sale


async def test_a_reversal_moves_a_user_down(commit: Commit, client: TestClient, session: Session,
                                            settings: Settings, redis_sync: redis.Redis) -> None:
    make_offer(session, external_id="lb-offer", user_share=Decimal(1))
    alice, bob = make_user(session), make_user(session)
    big = _credit_and_approve(commit, session, alice, "10")
    _credit_and_approve(commit, session, alice, "1")
    _credit_and_approve(commit, session, bob, "5")
    data = await _read(client, settings, alice, "weekly")
    assert [(e["userId"], e["score"]) for e in data["entries"]] == [(alice.id, 11), (bob.id, 5)]
    reverse_sale(session, sale_id=big)
    commit(session)
    data = await _read(client, settings, alice, "weekly")
    assert [(e["userId"], e["score"]) for e in data["entries"]] == [(bob.id, 5), (alice.id, 1)]
    assert data["me"] == {"rank": 2, "score": 1}


@pytest.mark.parametrize("seed", [3, 4])
def test_rebuild_equals_incremental(commit: Commit, session: Session, settings: Settings, redis_sync: redis.Redis,
                                    seed: int) -> None:
    rng = random.Random(seed)
    make_offer(session, external_id="lb-offer", user_share=Decimal(1))
    users = [make_user(session) for _ in range(6)]
    approved: list[int] = []
    for _ in range(40):
        if approved and rng.random() < 0.25:
            reverse_sale(session, sale_id=approved.pop(rng.randrange(len(approved))))
            commit(session)
        else:
            amount = f"{rng.randrange(1, 3)}.{rng.choice(['00', '50'])}"  # many ties
            approved.append(_credit_and_approve(commit, session, rng.choice(users), amount))
    now = dt.datetime.now(UTC)
    names = {p: lb.bucket(p, now) for p in lb.PERIODS}
    incremental = {p: _board(redis_sync, settings, p, n) for p, n in names.items()}
    assert incremental["all_time"]
    for _ in range(2):  # twice: idempotent
        lb.rebuild_current(session, client=redis_sync, settings=settings, now=now)
        assert {p: _board(redis_sync, settings, p, n) for p, n in names.items()} == incremental
    expected = {}
    for sale in session.scalars(select(Sale).where(Sale.status == "approved")):
        expected[sale.user_id] = expected.get(sale.user_id, 0) + float(sale.commission_amount)
    assert dict(incremental["all_time"]) == {u: s * 100 for u, s in expected.items()}


def test_prizes_are_paid_once(commit: Commit, session: Session, redis_sync: redis.Redis) -> None:
    offer = make_offer(session)
    users = [make_user(session) for _ in range(4)]
    now = dt.datetime.now(UTC)
    yesterday = now - dt.timedelta(days=1)
    for user, amount in zip(users, ["1.00", "9.00", "5.00", "5.00"], strict=True):
        _approved_sale(commit, session, user, amount, yesterday, offer)
    table = lb.prize_table("daily=3,2,1")
    first = lb.pay_prizes(session, table=table, now=now)
    # Ties by earlier signup: users[2] before users[3].
    assert [(rank, uid, amount) for _, _, rank, uid, amount in first] == [
        (1, users[1].id, Decimal(3)), (2, users[2].id, Decimal(2)), (3, users[3].id, Decimal(1))]
    assert lb.pay_prizes(session, table=table, now=now) == []
    prizes = session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "prize"))
    assert prizes == 3


def test_updates_are_announced_at_most_once_per_interval(commit: Commit, session: Session,
                                                         redis_sync: redis.Redis) -> None:
    make_offer(session, external_id="lb-offer", user_share=Decimal(1))
    user = make_user(session)
    for _ in range(3):
        _credit_and_approve(commit, session, user, "1")
    events = session.scalars(select(OutboxEvent).where(OutboxEvent.event == "leaderboard:updated")).all()
    assert sorted(e.data["leaderboard"] for e in events) == sorted(lb.PERIODS)
    assert all(e.target == "all" for e in events)
