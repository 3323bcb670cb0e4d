"""Daily analytics rollups and the admin dashboard figures (docs/api.md "Admin").

A closed UTC day's row is computed ABSOLUTELY from the raw rows of that day and upserted, in the
same transaction as the fill-state row that says the day is done (zulip's analytics counts
style): a fill that dies half way commits nothing, and a refill overwrites, never adds. Every
figure is keyed by when its event happened (a sale's creation, the ledger entry of an approval
or a reversal, a terminal status), so a closed day never changes later. Reads combine the rows
with live figures for the days after the last filled one (normally only today), so their cost
grows with days, not with sales.

"Active user" on a day: a user who completed an offer (a sale was created for them) or requested
a withdrawal that day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

STATE = "daily"
FIELDS = (
    "revenue", "reversed_amount", "sales_created", "sales_approved", "sales_rejected",
    "sales_reversed", "signups", "active_users", "payouts_requested", "payouts_paid",
    "payouts_paid_amount", "payouts_failed", "payouts_cancelled",
)

# Every figure of the half-open range [lo, hi). Each subquery reads one index range.
_FIGURES = """
SELECT
 (SELECT coalesce(sum(amount), 0) FROM ledger_entries
   WHERE kind = 'sale_credit' AND created_at >= :lo AND created_at < :hi) AS revenue,
 (SELECT coalesce(-sum(amount), 0) FROM ledger_entries
   WHERE kind = 'sale_reversal' AND created_at >= :lo AND created_at < :hi) AS reversed_amount,
 (SELECT count(*) FROM sales WHERE created_at >= :lo AND created_at < :hi) AS sales_created,
 (SELECT count(*) FROM ledger_entries
   WHERE kind = 'sale_credit' AND created_at >= :lo AND created_at < :hi) AS sales_approved,
 (SELECT count(*) FROM sales
   WHERE status = 'rejected' AND decided_at >= :lo AND decided_at < :hi) AS sales_rejected,
 (SELECT count(*) FROM sales
   WHERE status = 'reversed' AND decided_at >= :lo AND decided_at < :hi) AS sales_reversed,
 (SELECT count(*) FROM users WHERE created_at >= :lo AND created_at < :hi) AS signups,
 (SELECT count(*) FROM (
    SELECT user_id FROM sales WHERE created_at >= :lo AND created_at < :hi
    UNION SELECT user_id FROM payments WHERE created_at >= :lo AND created_at < :hi) a
 ) AS active_users,
 (SELECT count(*) FROM payments WHERE created_at >= :lo AND created_at < :hi) AS payouts_requested,
 (SELECT count(*) FROM payments
   WHERE status = 'paid' AND updated_at >= :lo AND updated_at < :hi) AS payouts_paid,
 (SELECT coalesce(sum(amount), 0) FROM payments
   WHERE status = 'paid' AND updated_at >= :lo AND updated_at < :hi) AS payouts_paid_amount,
 (SELECT count(*) FROM payments
   WHERE status = 'failed' AND updated_at >= :lo AND updated_at < :hi) AS payouts_failed,
 (SELECT count(*) FROM payments
   WHERE status = 'cancelled' AND updated_at >= :lo AND updated_at < :hi) AS payouts_cancelled
"""
_LIVE = text(_FIGURES)
_COLUMNS = ", ".join(FIELDS)
_UPSERT = text(
    f"INSERT INTO analytics_daily (day, {_COLUMNS}) SELECT CAST(:day AS date), f.* FROM ({_FIGURES}) f "
    "ON CONFLICT (day) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in FIELDS)
)
_LOCK_STATE = text(
    "SELECT filled_through FROM analytics_fill_state WHERE name = :name FOR UPDATE"
)
_SET_STATE = text(
    "INSERT INTO analytics_fill_state (name, filled_through) VALUES (:name, :day) "
    "ON CONFLICT (name) DO UPDATE SET filled_through = EXCLUDED.filled_through"
)
_STATE = text("SELECT filled_through FROM analytics_fill_state WHERE name = :name")
_FIRST_DAY = text(
    "SELECT CAST(min(created_at) AT TIME ZONE 'UTC' AS date) FROM users"
)


@dataclass(frozen=True)
class Rollup:
    """Rows of closed UTC days, each recomputed absolutely from that day's raw rows by ``fill``
    (parameters ``day``, ``lo``, ``hi``), and the fill-state row ``name`` that says up to which
    day they are complete. ``first_day`` gives the first day with raw rows (NULL: none yet)."""

    name: str
    fill: TextClause
    first_day: TextClause


# The dashboard's figures (``analytics_daily``); the offers' funnel is ``offer_analytics.OFFERS``.
DAILY = Rollup(STATE, _UPSERT, _FIRST_DAY)


def bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    lo = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return lo, lo + dt.timedelta(days=1)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def filled_through(session: Session, *, rollup: Rollup = DAILY) -> dt.date | None:
    return session.execute(_STATE, {"name": rollup.name}).scalar()


def fill_day(session: Session, *, day: dt.date, advance: bool = True,
             rollup: Rollup = DAILY) -> None:
    """Recompute one day's rows absolutely; with ``advance`` also move the fill state to it.

    Takes the fill-state row lock first, so concurrent fills of any day serialise. The caller
    commits: the rows and the state land together or not at all.
    """
    session.execute(_LOCK_STATE, {"name": rollup.name})
    lo, hi = bounds(day)
    session.execute(rollup.fill, {"day": day, "lo": lo, "hi": hi})
    if advance:
        current = filled_through(session, rollup=rollup)
        if current is None or current < day:
            session.execute(_SET_STATE, {"name": rollup.name, "day": day})


def next_day_to_fill(session: Session, *, rollup: Rollup = DAILY) -> dt.date | None:
    """The first day after the fill state (or the first day with raw rows), if it is closed."""
    done = filled_through(session, rollup=rollup)
    start = done + dt.timedelta(days=1) if done else session.execute(rollup.first_day).scalar()
    if start is None or start >= today():
        return None
    return start


def fill_pending_days(begin: Any, *, limit: int = 400, rollup: Rollup = DAILY) -> int:
    """Fill closed days one transaction each until caught up (at most ``limit``); returns how
    many. ``begin()`` is a context manager giving a session in a new transaction."""
    filled = 0
    while filled < limit:
        with begin() as session:
            day = next_day_to_fill(session, rollup=rollup)
            if day is None:
                return filled
            fill_day(session, day=day, rollup=rollup)
        filled += 1
    return filled


def reset_fill(session: Session, *, since: dt.date, rollup: Rollup = DAILY) -> None:
    """Make the fill redo every day from ``since`` on (the backfill command)."""
    session.execute(_SET_STATE, {"name": rollup.name, "day": since - dt.timedelta(days=1)})


def live_figures(session: Session, *, lo: dt.datetime, hi: dt.datetime) -> dict[str, Any]:
    return dict(session.execute(_LIVE, {"lo": lo, "hi": hi}).mappings().one())


_SUMS = text(
    "SELECT " + ", ".join(f"coalesce(sum({n}), 0) AS {n}" for n in FIELDS)
    + " FROM analytics_daily WHERE day >= :first AND day <= :last"
)


def window_sums(session: Session, *, first: dt.date | None) -> dict[str, Any]:
    """Every figure summed from ``first`` (None: the beginning) up to now."""
    done = filled_through(session)
    now = dt.datetime.now(dt.UTC)
    if done is None:
        lo = bounds(first)[0] if first else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return live_figures(session, lo=lo, hi=now + dt.timedelta(days=1))
    rolled = dict(session.execute(_SUMS, {"first": first or dt.date(1970, 1, 1), "last": done})
                  .mappings().one())
    live_from = max(done + dt.timedelta(days=1), first or done)
    live = live_figures(session, lo=bounds(live_from)[0], hi=now + dt.timedelta(days=1))
    return {name: rolled[name] + live[name] for name in FIELDS}


_DAYS = text(f"SELECT day, {_COLUMNS} FROM analytics_daily WHERE day >= :first AND day <= :last")


def daily_series(session: Session, *, days: int) -> list[dict[str, Any]]:
    """One dict per day of the last ``days`` days (today included), empty days as zeros."""
    last = today()
    first = last - dt.timedelta(days=days - 1)
    done = filled_through(session)
    rows = {r["day"]: dict(r) for r in session.execute(_DAYS, {"first": first, "last": last}).mappings()}
    out = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        if done is not None and day <= done and day in rows:
            figures = rows[day]
        elif done is not None and day <= done:
            figures = {name: 0 for name in FIELDS}
        else:
            lo, hi = bounds(day)
            figures = live_figures(session, lo=lo, hi=hi)
        out.append({"date": day, **{n: figures[n] for n in FIELDS}})
    return out


# The dashboard in ONE statement: rolled-up days up to each rollup's fill state, live rows after
# it (normally only today), and the small live counts. :first7 is the first of the last 7 days.
# Referral earnings are read live through their own partial index (few rows beside the sales').
DASHBOARD_SQL = text(
    """
    WITH st AS (
        SELECT coalesce((SELECT filled_through FROM analytics_fill_state WHERE name = 'daily'),
                        DATE '1969-12-31') AS done,
               coalesce((SELECT filled_through FROM analytics_fill_state WHERE name = 'offers'),
                        DATE '1969-12-31') AS offers_done
    ), edge AS (
        SELECT (done + 1)::timestamp AT TIME ZONE 'UTC' AS lo,
               greatest(done + 1, CAST(:first7 AS date))::timestamp AT TIME ZONE 'UTC' AS lo7,
               greatest(offers_done + 1, CAST(:first7 AS date))::timestamp AT TIME ZONE 'UTC'
                   AS clicks_lo7
        FROM st
    ), rolled AS (
        SELECT coalesce(sum(revenue - reversed_amount), 0) AS revenue,
               coalesce(sum(signups), 0) AS signups,
               coalesce(sum(signups) FILTER (WHERE day >= :first7), 0) AS signups7,
               coalesce(sum(sales_created) FILTER (WHERE day >= :first7), 0) AS sales7
        FROM analytics_daily, st WHERE day <= st.done
    )
    SELECT
     rolled.revenue + (SELECT coalesce(sum(amount), 0) FROM ledger_entries, edge
        WHERE kind IN ('sale_credit', 'sale_reversal') AND created_at >= edge.lo) AS total_revenue,
     rolled.signups + (SELECT count(*) FROM users, edge WHERE created_at >= edge.lo) AS total_users,
     rolled.signups7 + (SELECT count(*) FROM users, edge WHERE created_at >= edge.lo7) AS new_users,
     rolled.sales7 + (SELECT count(*) FROM sales, edge WHERE created_at >= edge.lo7) AS recent_sales,
     (SELECT coalesce(sum(clicks), 0) FROM analytics_offer_daily, st
        WHERE day >= :first7 AND day <= st.offers_done)
        + (SELECT count(*) FROM clicks, edge WHERE created_at >= edge.clicks_lo7) AS recent_clicks,
     (SELECT count(*) FROM users WHERE status <> 'active') AS not_active,
     (SELECT count(*) FROM offers WHERE status = 'active') AS total_offers,
     (SELECT coalesce(sum(amount), 0) FROM payments WHERE status = 'pending') AS pending_payments,
     (SELECT count(*) FROM payments WHERE status = 'pending' AND needs_approval
        AND approved_at IS NULL) + (SELECT count(*) FROM offers WHERE status = 'pending')
        AS pending_approvals,
     (SELECT count(*) FROM payments WHERE status = 'pending' AND needs_review
        AND approved_at IS NULL) AS risky_withdrawals,
     (SELECT coalesce(sum(amount), 0) FROM ledger_entries
        WHERE kind IN ('referral', 'referral_reversal')
          AND created_at >= CAST(:first7 AS date)::timestamp AT TIME ZONE 'UTC')
        AS referral_earnings
    FROM rolled
    """
)

# Net revenue per day: rows up to the fill state, the live ledger after it. Three small
# statements with constant bounds rather than one: with the bound computed inside the statement
# the planner guesses a large scan and pays for JIT compilation on every call.
STATE_SQL = text("SELECT filled_through FROM analytics_fill_state WHERE name = 'daily'")
REVENUE_ROWS_SQL = text(
    "SELECT day, revenue - reversed_amount AS revenue FROM analytics_daily "
    "WHERE day >= :first AND day <= :last"
)
REVENUE_LIVE_SQL = text(
    """
    SELECT CAST(created_at AT TIME ZONE 'UTC' AS date) AS day, sum(amount) AS revenue
    FROM ledger_entries
    WHERE kind IN ('sale_credit', 'sale_reversal') AND created_at >= :lo
    GROUP BY 1
    """
)


def revenue_bounds(days: int, done: dt.date | None) -> dict[str, Any]:
    """Parameters of the two revenue statements: rolled days [first, last], live from lo."""
    first = today() - dt.timedelta(days=days - 1)
    last = done if done is not None else first - dt.timedelta(days=1)
    return {"first": first, "last": last, "lo": bounds(max(last + dt.timedelta(days=1), first))[0]}


def revenue_days(days: int, rolled: Iterable[Any], live: Iterable[Any]) -> list[dict[str, Any]]:
    """``[{date, revenue}]`` for the last ``days`` days, today last, empty days as 0."""
    figures = {r["day"]: r["revenue"] for r in rolled}
    figures.update({r["day"]: r["revenue"] for r in live})
    first = today() - dt.timedelta(days=days - 1)
    return [{"date": first + dt.timedelta(days=i),
             "revenue": figures.get(first + dt.timedelta(days=i), Decimal(0))}
            for i in range(days)]


def dashboard_params() -> dict[str, Any]:
    return {"first7": today() - dt.timedelta(days=6)}


def dashboard_payload(row: Any) -> dict[str, Any]:
    """docs/api.md "Admin"'s dashboard payload (snake_case keys) from a DASHBOARD_SQL row."""
    return {
        "stats": {
            "total_users": row["total_users"],
            "active_users": row["total_users"] - row["not_active"],
            "total_offers": row["total_offers"],
            "total_revenue": row["total_revenue"],
            "pending_payments": row["pending_payments"],
            "risky_withdrawals": row["risky_withdrawals"],
        },
        "recent_activity": {
            "new_users": row["new_users"],
            "recent_sales": row["recent_sales"],
            "recent_clicks": row["recent_clicks"],
            "pending_approvals": row["pending_approvals"],
            "referral_earnings": row["referral_earnings"],
        },
    }


def dashboard(session: Session) -> dict[str, Any]:
    return dashboard_payload(session.execute(DASHBOARD_SQL, dashboard_params()).mappings().one())


def revenue_series(session: Session, *, days: int) -> list[dict[str, Any]]:
    params = revenue_bounds(days, filled_through(session))
    return revenue_days(days, session.execute(REVENUE_ROWS_SQL, params).mappings(),
                        session.execute(REVENUE_LIVE_SQL, params).mappings())


_BY_STATUS = text(
    "SELECT status, count(*) AS n FROM users WHERE status <> 'active' GROUP BY status"
)


def users_series(session: Session, *, days: int) -> dict[str, Any]:
    series = [{"date": d["date"], "signups": d["signups"], "active": d["active_users"]}
              for d in daily_series(session, days=days)]
    total = window_sums(session, first=None)["signups"]
    by_status = {"active": 0, "suspended": 0, "banned": 0}
    for row in session.execute(_BY_STATUS):
        by_status[row.status] = row.n
    by_status["active"] = total - by_status["suspended"] - by_status["banned"]
    return {"days": series, "totals": {"users": total, "byStatus": by_status}}
