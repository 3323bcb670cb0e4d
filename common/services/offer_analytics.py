"""Conversion analytics: each offer's clicks, conversions and their commission per UTC day
(``analytics_offer_daily``, docs/api.md "Analytics"), filled like the dashboard's rollup
(``analytics.Rollup``: a closed day recomputed absolutely, its fill state ``offers`` moved in the
same commit) and read with live figures for the days after the last filled one.

What each figure counts, keyed by when its event happened so that a closed day never changes:

- a click, on the day it was made;
- a conversion: a sale attributed to a click (``sales.click_id``: a network's credit naming the
  click, or an approved claim's sale), on the day the sale was created, whatever became of it;
- revenue: the commission of those sales credited (``sale_credit``) minus what reversals took
  back (``sale_reversal``), on the day of the ledger entry, as the dashboard's revenue.

The retention purge deletes old clicks that no sale or claim names, so a closed day's raw clicks
can only shrink: a refill keeps the larger of the stored and the recounted clicks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import RowMapping, text
from sqlalchemy.orm import Session

from common.money import to_cents
from common.services.analytics import Rollup, revenue_bounds

STATE = "offers"

# Each offer's figures of the raw rows from :lo (and before :hi when the range is a day).
_FIGURES = """
clicked AS (
    SELECT offer_id, count(*) AS n FROM clicks
    WHERE created_at >= :lo {until} GROUP BY offer_id
), converted AS (
    SELECT offer_id, count(*) AS n FROM sales
    WHERE click_id IS NOT NULL AND created_at >= :lo {until} GROUP BY offer_id
), paid AS (
    SELECT s.offer_id,
           coalesce(sum(e.amount) FILTER (WHERE e.kind = 'sale_credit'), 0) AS revenue,
           coalesce(-sum(e.amount) FILTER (WHERE e.kind = 'sale_reversal'), 0) AS reversed_amount
    FROM ledger_entries e JOIN sales s ON s.id = e.reference_id
    WHERE e.kind IN ('sale_credit', 'sale_reversal') AND e.reference_type = 'sale'
      AND e.created_at >= :lo {until_e} AND s.click_id IS NOT NULL
    GROUP BY s.offer_id
)"""
_DAY_FIGURES = _FIGURES.format(until="AND created_at < :hi", until_e="AND e.created_at < :hi")
_LIVE_FIGURES = _FIGURES.format(until="", until_e="")

# One day's rows, absolutely: every offer with a figure that day, and every offer that had a row
# (a refill zeroes what is no longer there, except clicks: see the module's docstring).
_FILL = text(
    f"""
    WITH {_DAY_FIGURES}, stored AS (
        SELECT offer_id FROM analytics_offer_daily WHERE day = :day
    ), offer AS (
        SELECT offer_id FROM clicked UNION SELECT offer_id FROM converted
        UNION SELECT offer_id FROM paid UNION SELECT offer_id FROM stored
    )
    INSERT INTO analytics_offer_daily (day, offer_id, clicks, conversions, revenue, reversed_amount)
    SELECT CAST(:day AS date), o.offer_id, coalesce(c.n, 0), coalesce(v.n, 0),
           coalesce(p.revenue, 0), coalesce(p.reversed_amount, 0)
    FROM offer o LEFT JOIN clicked c USING (offer_id) LEFT JOIN converted v USING (offer_id)
         LEFT JOIN paid p USING (offer_id)
    ON CONFLICT (day, offer_id) DO UPDATE SET
        clicks = greatest(analytics_offer_daily.clicks, EXCLUDED.clicks),
        conversions = EXCLUDED.conversions, revenue = EXCLUDED.revenue,
        reversed_amount = EXCLUDED.reversed_amount
    """
)
# Every conversion has a click made before it, so the first click's day is the first day.
_FIRST_DAY = text("SELECT CAST(min(created_at) AT TIME ZONE 'UTC' AS date) FROM clicks")

OFFERS = Rollup(STATE, _FILL, _FIRST_DAY)

STATE_SQL = text(f"SELECT filled_through FROM analytics_fill_state WHERE name = '{STATE}'")
# Per offer over the last days: rows [first, last] (up to the fill state), live from :lo on.
OFFERS_SQL = text(
    f"""
    WITH rolled AS (
        SELECT offer_id, sum(clicks) AS clicks, sum(conversions) AS conversions,
               sum(revenue - reversed_amount) AS revenue
        FROM analytics_offer_daily WHERE day >= :first AND day <= :last GROUP BY offer_id
    ), {_LIVE_FIGURES}, figures AS (
        SELECT offer_id, clicks, conversions, revenue FROM rolled
        UNION ALL SELECT offer_id, n, 0, 0 FROM clicked
        UNION ALL SELECT offer_id, 0, n, 0 FROM converted
        UNION ALL SELECT offer_id, 0, 0, revenue - reversed_amount FROM paid
    )
    SELECT o.id AS offer_id, o.title, CAST(sum(f.clicks) AS bigint) AS clicks,
           CAST(sum(f.conversions) AS bigint) AS conversions, sum(f.revenue) AS revenue
    FROM figures f JOIN offers o ON o.id = f.offer_id
    GROUP BY o.id, o.title
    HAVING sum(f.clicks) > 0 OR sum(f.conversions) > 0 OR sum(f.revenue) <> 0
    ORDER BY revenue DESC, clicks DESC, o.id
    """
)

_RATE = Decimal("0.0001")


def offers_params(days: int, done: dt.date | None) -> dict[str, Any]:
    """Parameters of ``OFFERS_SQL`` for the last ``days`` days, today included."""
    return revenue_bounds(days, done)


def conversion_rate(row: Mapping[str, Any]) -> Decimal | None:
    """Conversions per click, to 4 decimals (None without clicks)."""
    if not row["clicks"]:
        return None
    rate = Decimal(row["conversions"]) / Decimal(row["clicks"])
    return rate.quantize(_RATE, ROUND_HALF_EVEN)


def epc(row: Mapping[str, Any]) -> Decimal | None:
    """Revenue per click, truncated to cents as every computed amount (None without clicks)."""
    if not row["clicks"]:
        return None
    return to_cents(Decimal(row["revenue"]) / Decimal(row["clicks"]))


def offer_figures(session: Session, *, days: int) -> list[RowMapping]:
    """The rows of ``OFFERS_SQL`` for the last ``days`` days (the web runs the same statements
    on its pool)."""
    done = session.execute(STATE_SQL).scalar()
    return list(session.execute(OFFERS_SQL, offers_params(days, done)).mappings().all())
