"""``savebucks replay-postbacks``: the replay in bulk for ops; a dry run writes nothing."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.postbacks import log_postback
from tests.fixtures.factories import make_user
from tests.fixtures.money_factories import generic_params, make_offer

ROOT = Path(__file__).resolve().parents[3]  # the checkout: tests/common/commands/ is three below
# The ``savebucks`` entry point, run from this checkout (``python -m common.cli`` would register
# only the commands defined in that module).
SAVEBUCKS = "import sys; from common.cli import main; sys.exit(main(sys.argv[1:]))"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POSTBACK_SECRET_TESTNET": "test-secret"}
    return subprocess.run([sys.executable, "-c", SAVEBUCKS, "replay-postbacks", *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
                          check=False)


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT (SELECT count(*) FROM sales), (SELECT count(*) FROM postback_log), "
            "(SELECT count(*) FROM audit_log), (SELECT coalesce(sum(pending_balance), 0) * 100 "
            "FROM users)::int")).one())


@pytest.mark.committed
def test_dry_run_writes_nothing_and_a_run_applies_once(committed: Engine) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with Session(committed, expire_on_commit=False) as session, session.begin():
        user = make_user(session)
        make_offer(session, network="testnet", external_id="o1", user_share="1")
        for txn in ("t1", "t2", "t3"):  # logged while the secret was wrong
            log_postback(session, network="testnet", method="GET", ip="127.0.0.1",
                         verdict="bad_signature",
                         params=generic_params(user_id=user.id, offer_id="o1", txn_id=txn, amount="2.00"))
        forged = {**generic_params(user_id=user.id, offer_id="o1", txn_id="t4"), "amount": "9.00"}
        log_postback(session, network="testnet", method="GET", ip="127.0.0.1",
                     verdict="bad_signature", params=forged)
        log_postback(session, network="testnet", method="GET", ip="127.0.0.1", verdict="accepted",
                     outcome="credited", params={"txn_id": "other"})
    args = ["--network", "testnet", "--outcome", "bad_signature", "--since", since.isoformat()]
    before = _counts(committed)

    dry = _run(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "4 callback(s)" in dry.stdout
    assert "accepted/credited: 3" in dry.stdout and "bad_signature: 1" in dry.stdout
    assert _counts(committed) == before

    limited = _run(*args, "--limit", "2")
    assert limited.returncode == 0, limited.stderr
    assert "2 callback(s)" in limited.stdout and "accepted/credited: 2" in limited.stdout
    done = _run(*args)
    assert "accepted/duplicate: 2" in done.stdout and "accepted/credited: 1" in done.stdout
    sales, logs, audits, pending_cents = _counts(committed)
    assert (sales, logs, audits, pending_cents) == (3, before[1] + 6, 6, 600)
    with committed.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM audit_log WHERE action = 'postback.replay' AND actor_id IS NULL "
            "AND after->>'source' = 'cli'")).scalar_one() == 6

    assert _run(*args, "--until", since.isoformat()).stdout.count("0 callback(s)") == 1


@pytest.mark.parametrize("args", [
    ["--network", "testnet", "--outcome", "nope", "--since", "2026-01-01"],
    ["--network", "testnet", "--outcome", "credited", "--since", "yesterday"],
    ["--network", "testnet", "--outcome", "credited", "--since", "2026-01-01", "--limit", "0"],
    ["--outcome", "credited", "--since", "2026-01-01"],
])
def test_bad_arguments_exit_2(args: list[str]) -> None:
    assert _run(*args).returncode == 2
