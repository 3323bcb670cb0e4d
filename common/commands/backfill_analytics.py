"""``savebucks backfill-analytics --since DATE``: recompute the daily rollups from that day on."""

from __future__ import annotations

import argparse
import datetime as dt

from common.cli import command
from common.config import load_settings
from common.services.analytics import fill_pending_days, reset_fill
from common.uow import SyncContext


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", required=True, type=dt.date.fromisoformat,
                        help="first UTC day to recompute (YYYY-MM-DD)")


@command("backfill-analytics", "recompute the daily analytics rollups from --since on",
         arguments=_arguments)
def _backfill(args: argparse.Namespace) -> int:
    ctx = SyncContext.create(load_settings(), pool_size=1)
    try:
        with ctx.transaction() as session:
            reset_fill(session, since=args.since)
        days = fill_pending_days(ctx.transaction, limit=100_000)
    finally:
        ctx.close()
    print(f"backfill-analytics: {days} day(s) filled", flush=True)
    return 0
