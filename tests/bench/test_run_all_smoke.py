"""Every benchmark still runs: ``bench/run_all --smoke`` (a second of load each, small sizes, no
thresholds), so that a change which breaks one fails CI instead of the next person to measure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.lib import ROOT
from bench.run_all import benchmarks
from tests.conftest import ADMIN_DATABASE_URL

# Generous: the smoke run takes one to two minutes; a hung benchmark is cut by run_all itself.
TIMEOUT = 600


def _drop_databases(suffix: str) -> None:
    engine = create_engine(ADMIN_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                             {"p": f"savebucks_bench%{suffix}"}).scalars().all()
        for name in names:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.mark.timeout(TIMEOUT + 60)
def test_every_benchmark_runs_in_smoke_mode(tmp_path: Path) -> None:
    suffix = f"_smoke_{os.getpid()}"  # databases of this run only: others may be benchmarking
    out = tmp_path / "smoke.md"
    # The test run's own server and Redis database (tests/conftest.py set them in os.environ).
    env = {**os.environ, "BENCH_DB_SUFFIX": suffix}
    try:
        done = subprocess.run(
            # CI's private PostgreSQL runs with fsync=off: the smoke run says so and goes on.
            [sys.executable, "bench/run_all.py", "--smoke", "--out", str(out), "--",
             "--allow-non-durable"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    finally:
        _drop_databases(suffix)
    report = out.read_text() if out.exists() else ""
    assert done.returncode == 0, report or done.stderr[-3000:]
    sections = {part.split(":", 1)[0]: part for part in report.split("\n## bench/")[1:]}
    for path in benchmarks():
        section = sections.get(path.name, "")
        assert section.startswith(f"{path.name}: ok"), report
        # Each says which server it measured (tables printed through bench.lib carry the line).
        assert "\ndatabase: PostgreSQL " in section, section
