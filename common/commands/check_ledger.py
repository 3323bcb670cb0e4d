"""``savebucks check-ledger``: verify that every user's money adds up."""

from __future__ import annotations

import argparse
import sys

import redis

from common.cli import command
from common.config import load_settings
from common.metrics import record_ledger_check
from common.services.ledger import check_ledger
from common.uow import SyncContext


def _record(ctx: SyncContext, problems: int) -> None:
    """For ``savebucks_ledger_check_*`` on /metrics; the exit status stays the check's own."""
    try:
        record_ledger_check(ctx.redis, ctx.settings, problems=problems)
    except redis.RedisError as exc:
        print(f"check-ledger: result not recorded for /metrics: {exc}", file=sys.stderr)


@command("check-ledger", "verify balance == sum(ledger) for every user (exit 1 listing users if not)")
def _check_ledger(args: argparse.Namespace) -> int:
    ctx = SyncContext.create(load_settings(), pool_size=1)
    try:
        with ctx.sessions() as session, session.begin():
            # One snapshot for every query of the check.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            problems = check_ledger(session)
        _record(ctx, len(problems))
    finally:
        ctx.close()
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"check-ledger: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check-ledger: every balance equals its ledger", flush=True)
    return 0
