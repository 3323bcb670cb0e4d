"""Chores of the ``savebucks`` command, one module each; importing registers them."""

from common.commands import check_ledger, seed_demo  # noqa: F401
from common.commands import backfill_analytics  # noqa: F401
from common.commands import create_admin  # noqa: F401
from common.commands import replay_postbacks  # noqa: F401
