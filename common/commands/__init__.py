"""Chores of the ``savebucks`` command, one module each; importing registers them."""

from common.commands import (  # noqa: F401
    backfill_analytics,
    check_ledger,
    create_admin,
    replay_postbacks,
    seed_demo,
)
