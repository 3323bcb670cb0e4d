"""The offers' conversion rollup equals a direct count of the raw rows (clicks, attributed sales,
their ledger entries) over random days and offers; a day filled again gives the same rows; the
purge of old clicks never lowers a filled day; the route and the dashboard's ``recent_clicks``
read rows and live figures alike (docs/api.md "Analytics")."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from common.models import AnalyticsOfferDay, Click, LedgerEntry, Sale
from common.services import analytics, offer_analytics
from common.services.analytics import DAILY
from common.services.clicks import new_click_id
from common.services.offer_analytics import OFFERS
from tests.fixtures.admin import admin, admin_headers, api, member, member_headers  # noqa: F401
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import make_offer

DAYS = 9
FIGURES = ("clicks", "conversions", "revenue", "reversed_amount")
Key = tuple[dt.date, int]


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
        seconds=rng.randrange(86_400))


class _World:
    """Random clicks, attributed and unattributed sales and their ledger entries, and the figures
    expected of each (day, offer), counted here in Python from the same rows."""

    def __init__(self, session: Session, seed: int, offers: int = 4) -> None:
        self.session, self.rng = session, random.Random(seed)
        self.seed, self.n = seed, 0
        self.offers = [make_offer(session) for _ in range(offers)]
        self.users = [make_user(session).id for _ in range(5)]
        self.expect: defaultdict[Key, defaultdict[str, Any]] = defaultdict(lambda: defaultdict(int))

    def click(self, offer: int, at: dt.datetime) -> str:
        public_id = new_click_id()
        self.session.execute(insert(Click).values(
            public_id=public_id, user_id=self.rng.choice(self.users), offer_id=offer,
            created_at=at))
        self.expect[(at.date(), offer)]["clicks"] += 1
        return public_id

    def sale(self, offer: int, at: dt.datetime, *, click_id: str | None, status: str,
             credited: dt.datetime | None = None, decided: dt.datetime | None = None) -> None:
        self.n += 1
        commission = Decimal(self.rng.randrange(1, 3000)) / 100
        user = self.rng.choice(self.users)
        if click_id is not None:
            user = self.session.execute(select(Click.user_id).where(
                Click.public_id == click_id)).scalar_one()
        sale_id = self.session.execute(insert(Sale).values(
            user_id=user, offer_id=offer, network="testnet", external_id=f"w{self.seed}-{self.n}",
            sale_amount=commission, commission_amount=commission, status=status, hold_until=at,
            created_at=at, decided_at=decided, click_id=click_id).returning(Sale.id)).scalar_one()
        counted = click_id is not None
        if counted:
            self.expect[(at.date(), offer)]["conversions"] += 1
        if credited is not None:
            self._entry(user, sale_id, commission, "sale_credit", credited)
            if counted:
                self.expect[(credited.date(), offer)]["revenue"] += commission
        if status == "reversed":
            assert decided is not None
            self._entry(user, sale_id, -commission, "sale_reversal", decided)
            if counted:
                self.expect[(decided.date(), offer)]["reversed_amount"] += commission

    def _entry(self, user: int, sale_id: int, amount: Decimal, kind: str, at: dt.datetime) -> None:
        self.session.execute(insert(LedgerEntry).values(
            user_id=user, amount=amount, kind=kind, reference_type="sale", reference_id=sale_id,
            idempotency_key=f"{kind}:{sale_id}", created_at=at))

    def history(self, clicks: int = 160) -> None:
        """Clicks over the last DAYS closed days; some convert (any status) up to two days later,
        still before today; sales without a click are credited too and count nowhere."""
        rng = self.rng
        today = analytics.today()
        last = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC) - dt.timedelta(seconds=1)

        def later(ts: dt.datetime, hours: int) -> dt.datetime:
            return min(ts + dt.timedelta(seconds=rng.randrange(0, hours * 3600)), last)

        days = [today - dt.timedelta(days=d) for d in range(DAYS, 0, -1)]
        for _ in range(clicks):
            offer = rng.choice(self.offers)
            public_id = self.click(offer, _at(rng.choice(days), rng))
            if rng.random() < 0.45:
                self._converted(offer, public_id, later)
        for _ in range(25):
            at = _at(rng.choice(days), rng)
            self.sale(rng.choice(self.offers), at, click_id=None, status="approved",
                      credited=later(at, 20))

    def _converted(self, offer: int, click_id: str, later: Any) -> None:
        clicked = self.session.execute(select(Click.created_at).where(
            Click.public_id == click_id)).scalar_one()
        sold = later(clicked, 40)
        status = self.rng.choice(["pending", "approved", "rejected", "reversed"])
        credited = later(sold, 20) if status in ("approved", "reversed") else None
        decided = (later(credited, 30) if status == "reversed" else
                   later(sold, 20) if status == "rejected" else credited)
        self.sale(offer, sold, click_id=click_id, status=status, credited=credited, decided=decided)

    def settle_balances(self) -> None:
        """Balances as the ledger and the pending sales say, so the money check holds."""
        self.session.execute(text(
            "UPDATE users u SET balance = coalesce((SELECT sum(amount) FROM ledger_entries e "
            "WHERE e.user_id = u.id), 0), pending_balance = coalesce((SELECT sum(commission_amount) "
            "FROM sales s WHERE s.user_id = u.id AND s.status = 'pending'), 0)"))

    def expected(self) -> dict[Key, dict[str, Any]]:
        return {key: {f: figures[f] for f in FIGURES} for key, figures in self.expect.items()}

    def window(self, days: int) -> dict[int, dict[str, Any]]:
        """Per offer over the last ``days`` days (today included), as the route sums it."""
        first = analytics.today() - dt.timedelta(days=days - 1)
        out: defaultdict[int, defaultdict[str, Any]] = defaultdict(lambda: defaultdict(int))
        for (day, offer), figures in self.expect.items():
            for name, value in figures.items():
                out[offer][name] += value if day >= first else 0
        return {offer: {"clicks": f["clicks"], "conversions": f["conversions"],
                        "revenue": f["revenue"] - f["reversed_amount"]} for offer, f in out.items()}


@contextmanager
def _tx(session: Session) -> Iterator[Session]:
    with session.begin_nested():
        yield session


def _rows(session: Session) -> dict[Key, dict[str, Any]]:
    session.expire_all()
    return {(r.day, r.offer_id): {f: getattr(r, f) for f in FIGURES}
            for r in session.scalars(select(AnalyticsOfferDay))}


def _fill(session: Session) -> int:
    return analytics.fill_pending_days(lambda: _tx(session), rollup=OFFERS)


def _figures(session: Session, days: int) -> dict[int, dict[str, Any]]:
    return {r["offer_id"]: {"clicks": r["clicks"], "conversions": r["conversions"],
                            "revenue": r["revenue"]}
            for r in offer_analytics.offer_figures(session, days=days)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_equals_a_direct_count(session: Session, seed: int) -> None:
    world = _World(session, seed)
    world.history()
    world.settle_balances()
    assert _fill(session) >= DAYS
    yesterday = analytics.today() - dt.timedelta(days=1)
    assert analytics.filled_through(session, rollup=OFFERS) == yesterday
    assert analytics.filled_through(session, rollup=DAILY) is None  # a state of its own
    assert _rows(session) == world.expected()
    assert _fill(session) == 0
    # Every closed day's figures summed per offer, as the route reads them.
    assert _figures(session, DAYS + 1) == world.window(DAYS + 1)
    assert sum(f["conversions"] for f in world.expected().values()) == session.execute(text(
        "SELECT count(*) FROM sales WHERE click_id IS NOT NULL")).scalar_one()


def test_filling_a_day_again_changes_nothing(session: Session) -> None:
    world = _World(session, 7)
    world.history()
    _fill(session)
    before = _rows(session)
    day = analytics.today() - dt.timedelta(days=3)
    for _ in range(2):
        analytics.fill_day(session, day=day, advance=False, rollup=OFFERS)
    assert _rows(session) == before

    class Crash(Exception):
        pass

    # A fill that dies before its commit leaves nothing of itself.
    with pytest.raises(Crash), session.begin_nested():
        session.execute(text("DELETE FROM analytics_offer_daily WHERE day = :d"), {"d": day})
        analytics.fill_day(session, day=day, rollup=OFFERS)
        raise Crash
    assert _rows(session) == before
    # The backfill: every day again from the first, to the same rows.
    analytics.reset_fill(session, since=analytics.today() - dt.timedelta(days=DAYS + 2),
                         rollup=OFFERS)
    assert _fill(session) == DAYS + 2
    assert _rows(session) == before == world.expected()


def test_a_refill_zeroes_what_is_gone_but_keeps_purged_clicks(session: Session) -> None:
    world = _World(session, 5)
    world.history()
    _fill(session)
    day = analytics.today() - dt.timedelta(days=2)
    lo, hi = analytics.bounds(day)
    # The retention purge: clicks that no sale or claim names.
    purged = session.execute(text(
        "DELETE FROM clicks c WHERE created_at >= :lo AND created_at < :hi AND NOT EXISTS "
        "(SELECT 1 FROM sales s WHERE s.click_id = c.public_id)"), {"lo": lo, "hi": hi})
    assert purged.rowcount > 0  # type: ignore[attr-defined]
    # A row that a different rule once wrote, for an offer with no event that day.
    stray = make_offer(session)
    session.execute(insert(AnalyticsOfferDay).values(
        day=day, offer_id=stray, clicks=3, conversions=2, revenue=5, reversed_amount=1))
    analytics.fill_day(session, day=day, advance=False, rollup=OFFERS)
    rows = _rows(session)
    assert {k: v for k, v in rows.items() if k[1] != stray} == world.expected()
    assert rows[(day, stray)] == {"clicks": 3, "conversions": 0, "revenue": 0, "reversed_amount": 0}


def _today(world: _World) -> None:
    """Events of today (after the last filled day): live figures."""
    now = dt.datetime.now(dt.UTC)
    start = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.UTC)
    offer = world.offers[0]
    for _ in range(3):
        world.click(offer, now)
    click_id = world.click(world.offers[1], now)
    world.sale(world.offers[1], now, click_id=click_id, status="approved", credited=now,
               decided=now)
    older = world.click(offer, start - dt.timedelta(days=1))  # converts today
    world.sale(offer, now, click_id=older, status="pending")


async def test_route_reads_rows_and_today_alike(api: TestClient, session: Session,
                                                admin_headers: dict[str, str]) -> None:
    world = _World(session, 11, offers=3)
    world.history()
    _today(world)
    world.settle_balances()
    url = "/api/admin/analytics/offers?period=5"
    live = await (await api.get(url, headers=admin_headers)).json()
    _fill(session)
    resp = await api.get(url, headers=admin_headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"] == live["data"]  # all live before the first fill, the same after
    expected = world.window(5)
    assert {r["offerId"]: {"clicks": r["clicks"], "conversions": r["conversions"],
                           "revenue": Decimal(str(r["revenue"]))} for r in body["data"]} == {
        o: f for o, f in expected.items() if f["clicks"] or f["conversions"] or f["revenue"]}
    titles: dict[int, str] = {r.id: r.title for r in session.execute(text("SELECT id, title FROM offers"))}
    for row in body["data"]:
        assert list(row) == ["offerId", "title", "clicks", "conversions", "conversionRate",
                             "revenue", "epc"]
        assert row["title"] == titles[row["offerId"]]
        revenue = Decimal(str(row["revenue"]))
        if row["clicks"]:
            rate = Decimal(row["conversions"]) / row["clicks"]
            assert abs(Decimal(str(row["conversionRate"])) - rate) <= Decimal("0.00005")
            assert Decimal(str(row["epc"])) == (revenue / row["clicks"]).quantize(
                Decimal("0.01"), rounding="ROUND_DOWN")
        else:
            assert row["conversionRate"] is None and row["epc"] is None
    revenues = [Decimal(str(r["revenue"])) for r in body["data"]]
    assert revenues == sorted(revenues, reverse=True)


def test_ratios() -> None:
    row = {"clicks": 3, "conversions": 1, "revenue": Decimal("1.00")}
    assert offer_analytics.conversion_rate(row) == Decimal("0.3333")
    assert offer_analytics.epc(row) == Decimal("0.33")  # truncated, never rounded up
    assert offer_analytics.epc({**row, "revenue": Decimal("-1.00")}) == Decimal("-0.33")
    assert offer_analytics.conversion_rate({**row, "conversions": 5}) == Decimal("1.6667")
    assert offer_analytics.conversion_rate({**row, "clicks": 0}) is None
    assert offer_analytics.epc({**row, "clicks": 0}) is None


@pytest.mark.parametrize("period", ["0", "367", "-1", "abc", "1.5", ""])
async def test_route_refuses_a_bad_period(api: TestClient, admin_headers: dict[str, str],
                                          period: str) -> None:
    resp = await api.get(f"/api/admin/analytics/offers?period={period}", headers=admin_headers)
    body = await resp.json()
    assert resp.status == 400, body
    assert body["success"] is False and body["errors"][0].startswith("period")


async def test_route_is_for_admins(api: TestClient, member_headers: dict[str, str],
                                   admin_headers: dict[str, str]) -> None:
    assert (await api.get("/api/admin/analytics/offers")).status == 401
    assert (await api.get("/api/admin/analytics/offers", headers=member_headers)).status == 403
    resp = await api.get("/api/v1/admin/analytics/offers", headers=admin_headers)
    assert resp.status == 200 and (await resp.json())["data"] == []  # default period: 30 days


async def test_dashboard_counts_recent_clicks(api: TestClient, session: Session,
                                              admin_headers: dict[str, str]) -> None:
    world = _World(session, 13)
    world.history()
    _today(world)
    world.settle_balances()
    first7 = analytics.today() - dt.timedelta(days=6)
    clicks7 = sum(f["clicks"] for (day, _), f in world.expect.items() if day >= first7)
    url = "/api/admin/analytics/dashboard"
    live = (await (await api.get(url, headers=admin_headers)).json())["data"]
    _fill(session)
    analytics.fill_pending_days(lambda: _tx(session))
    filled = (await (await api.get(url, headers=admin_headers)).json())["data"]
    assert live == filled
    assert filled["recent_activity"]["recent_clicks"] == clicks7 > 0
    assert list(filled["recent_activity"]) == ["new_users", "recent_sales", "recent_clicks",
                                               "pending_approvals", "referral_earnings"]
