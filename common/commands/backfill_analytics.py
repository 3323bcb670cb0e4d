"""``savebucks backfill-analytics --since DATE``: recompute the daily rollups (the dashboard's and
the offers' conversions) from that day on. Restartable: each day commits with its fill state, so
after a crash the beat goes on from the last day filled, and running the command again redoes
every day from ``--since`` to the same figures (a day's rows are replaced, never added to)."""

from __future__ import annotations

import argparse
import datetime as dt

from common.cli import command
from common.config import load_settings
from common.services.analytics import DAILY, fill_pending_days, reset_fill
from common.services.offer_analytics import OFFERS
from common.uow import SyncContext


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", required=True, type=dt.date.fromisoformat,
                        help="first UTC day to recompute (YYYY-MM-DD)")


@command("backfill-analytics", "recompute the daily analytics rollups (dashboard, offers) from --since on",
         arguments=_arguments)
def _backfill(args: argparse.Namespace) -> int:
    ctx = SyncContext.create(load_settings(), pool_size=1)
    try:
        with ctx.transaction() as session:
            for rollup in (DAILY, OFFERS):
                reset_fill(session, since=args.since, rollup=rollup)
        filled = {rollup.name: fill_pending_days(ctx.transaction, limit=100_000, rollup=rollup)
                  for rollup in (DAILY, OFFERS)}
    finally:
        ctx.close()
    print("backfill-analytics: " + ", ".join(f"{name} {days} day(s)" for name, days in filled.items())
          + " filled", flush=True)
    return 0
