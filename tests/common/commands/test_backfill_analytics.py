"""``savebucks backfill-analytics``: refills both rollups from a day on, and a second run gives
the same rows."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services import analytics
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import make_offer

ROOT = Path(__file__).resolve().parents[3]
SAVEBUCKS = "import sys; from common.cli import main; sys.exit(main(sys.argv[1:]))"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SAVEBUCKS, "backfill-analytics", *args],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ),
                          cwd=ROOT, check=False)


def _state(engine: Engine) -> tuple[dict[str, dt.date], list[tuple[object, ...]]]:
    with engine.connect() as conn:
        states = dict(conn.execute(text("SELECT name, filled_through FROM analytics_fill_state")).all())
        rows = [tuple(r) for r in conn.execute(text(
            "SELECT day, offer_id, clicks, conversions FROM analytics_offer_daily ORDER BY 1, 2"))]
    return states, rows


@pytest.mark.committed
def test_backfill_fills_the_offers_rollup_too(committed: Engine) -> None:
    today = analytics.today()
    with Session(committed) as session, session.begin():
        user, offer = make_user(session), make_offer(session)
        for days_ago, n in ((3, 2), (1, 1)):
            for i in range(n):
                session.execute(text(
                    "INSERT INTO clicks (public_id, user_id, offer_id, created_at) "
                    "VALUES (:p, :u, :o, :at)"),
                    {"p": f"backfill{days_ago}{i}".ljust(22, "x"), "u": user.id, "o": offer,
                     "at": dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(12),
                                               tzinfo=dt.UTC)})
    since = (today - dt.timedelta(days=5)).isoformat()
    first = _run("--since", since)
    assert first.returncode == 0, first.stderr
    assert "daily 5 day(s), offers 5 day(s) filled" in first.stdout
    states, rows = _state(committed)
    yesterday = today - dt.timedelta(days=1)
    assert states == {"daily": yesterday, "offers": yesterday}
    assert rows == [(today - dt.timedelta(days=3), offer, 2, 0), (yesterday, offer, 1, 0)]
    again = _run("--since", since)
    assert again.returncode == 0, again.stderr
    assert _state(committed) == (states, rows)
