"""bench/run_all finds the benchmarks and gathers the tables they print."""

from __future__ import annotations

from bench.run_all import Outcome, benchmarks, report, tables_in


def test_finds_benchmarks_not_helpers() -> None:
    names = {p.name for p in benchmarks()}
    assert "health.py" in names
    assert not names & {"lib.py", "bare.py", "run_all.py", "__init__.py"}


def test_gathers_tables_and_reports_failures() -> None:
    output = "starting\n### /health, 64 connections\n\n| variant | req/s |\n|---|---|\n| bare | 9 |\n\nnoise\n"
    tables = tables_in(output)
    assert tables == ["### /health, 64 connections\n\n| variant | req/s |\n|---|---|\n| bare | 9 |"]
    text = report([Outcome("bench/health.py", 0, 21.0, tables, ""),
                   Outcome("bench/auth.py", 1, 3.0, [], "Traceback: boom")])
    assert "## bench/health.py: ok, 21 s" in text and "| bare | 9 |" in text
    assert "## bench/auth.py: FAILED (exit 1)" in text and "Traceback: boom" in text
