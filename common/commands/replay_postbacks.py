"""``savebucks replay-postbacks --network N --outcome O --since T [--until T] [--dry-run]
[--limit N]``: replay logged callbacks in bulk with today's configuration (after a secret or an
allow-list was fixed), as ``POST /api/admin/postbacks/{id}/replay`` does one by one."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from common.cli import command
from common.config import load_settings
from common.services.postback_log import OUTCOMES, LogSearch
from common.services.postback_replay import Replay, replay_many
from common.tracing import new_trace_id, trace_id_var
from common.uow import SyncContext

MAX_LIMIT = 100_000


def _time(text: str) -> dt.datetime:
    """ISO 8601 date or time; UTC unless it names a zone."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", required=True, type=str.lower)
    parser.add_argument("--outcome", required=True, choices=OUTCOMES,
                        help="the logged outcome, or the verdict that refused the callback")
    parser.add_argument("--since", required=True, type=_time, help="logged at or after (ISO 8601)")
    parser.add_argument("--until", type=_time, help="logged before (ISO 8601)")
    parser.add_argument("--limit", type=_limit, default=1000, help="at most this many (1000)")
    parser.add_argument("--dry-run", action="store_true",
                        help="replay each in a rolled-back transaction: print, write nothing")


def _line(replay: Replay, dry_run: bool) -> str:
    sale = f" sale {replay.sale_id} ({replay.sale_status})" if replay.sale_id else ""
    detail = f": {replay.detail}" if replay.detail else ""
    row = "" if dry_run else f" -> log {replay.id}"
    return f"log {replay.replay_of}{row}: {replay.result}{sale}{detail}"


@command("replay-postbacks", "replay logged callbacks with today's configuration",
         arguments=_arguments)
def _replay(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.network not in settings.networks:
        print(f"replay-postbacks: network {args.network!r} is not configured "
              f"(POSTBACK_SECRET_{args.network.upper()})", file=sys.stderr)
        return 2
    trace = new_trace_id()
    trace_id_var.set(trace)  # the run's log and audit rows share it
    search = LogSearch(network=args.network, outcome=args.outcome, since=args.since,
                       until=args.until)
    ctx = SyncContext.create(settings, pool_size=1)
    try:
        outcomes = replay_many(
            ctx.transaction, search=search, limit=args.limit, dry_run=args.dry_run,
            networks=settings.networks, hold_seconds=settings.sale_hold_seconds,
            report=lambda r: print(_line(r, args.dry_run), flush=True))
    finally:
        ctx.close()
    mode = "dry run, nothing written" if args.dry_run else f"trace id {trace}"
    print(f"replay-postbacks: {sum(outcomes.values())} callback(s) replayed ({mode})")
    for result, count in sorted(outcomes.items()):
        print(f"  {result}: {count}")
    return 0
