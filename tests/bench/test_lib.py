"""bench/lib.py says which database server a benchmark measured, and refuses to time writes on
one that does not make them durable unless asked to."""

from __future__ import annotations

import pytest

from bench import lib
from bench.lib import Durability, check_durable, durability
from tests.conftest import ADMIN_DATABASE_URL

DURABLE = Durability("15.20", "on", "on", "on")
FAST = Durability("15.20", "off", "off", "off")


@pytest.mark.parametrize(("settings", "durable"), [
    (("on", "on", "on"), True),
    (("on", "local", "on"), True),  # the local WAL is still flushed before the commit returns
    (("on", "remote_write", "on"), True),
    (("off", "on", "on"), False),
    (("on", "off", "on"), False),
    (("on", "on", "off"), False),
])
def test_durable_only_with_every_setting_on(settings: tuple[str, str, str], durable: bool) -> None:
    assert Durability("15.20", *settings).durable is durable


def test_the_description_names_every_setting_and_the_verdict() -> None:
    assert DURABLE.describe() == ("database: PostgreSQL 15.20, fsync=on, synchronous_commit=on, "
                                  "full_page_writes=on (durable)")
    assert "fsync=off" in FAST.describe() and "NOT durable" in FAST.describe()


def test_a_write_benchmark_refuses_a_non_durable_server_unless_allowed() -> None:
    with pytest.raises(SystemExit, match="--allow-non-durable"):
        check_durable(FAST, writes=True, allowed=False)
    check_durable(FAST, writes=True, allowed=True)
    check_durable(FAST, writes=False, allowed=False)  # reads do not depend on durability
    check_durable(DURABLE, writes=True, allowed=False)


def test_reads_the_settings_of_a_real_server() -> None:
    found = durability(ADMIN_DATABASE_URL)
    assert found.version[:2].isdigit()
    assert {found.fsync, found.full_page_writes} <= {"on", "off"}
    assert found.synchronous_commit in {"on", "off", "local", "remote_write", "remote_apply"}


def test_tables_carry_the_database_line_and_mark_a_non_durable_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = lib.Result("bare", 100, 1.0, 1.0, 2.0)
    monkeypatch.setattr(lib, "DATABASE", DURABLE)
    text = lib.table("GET /x", [result])
    assert text.startswith("### GET /x\n") and text.rstrip().endswith(DURABLE.describe())
    monkeypatch.setattr(lib, "DATABASE", FAST)
    text = lib.figures_table("Memory", {"bare": {"KiB": "13.5"}})
    assert text.startswith("### Memory [database NOT durable]\n")
    assert "| KiB | 13.5 |" in text and text.rstrip().endswith(FAST.describe())
    monkeypatch.setattr(lib, "DATABASE", None)  # a benchmark without a database: no line
    assert "database:" not in lib.table("GET /y", [result])


def test_smoke_mode_caps_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lib, "SMOKE", True)
    assert lib.smoke_seconds(10) == lib.SMOKE_SECONDS
    assert lib.smoke_seconds(0.5) == 0.5
    monkeypatch.setattr(lib, "SMOKE", False)
    assert lib.smoke_seconds(10) == 10


# A real report (wrk 4.1.0) whose thread statistics end in "87.50%" and "62.50%".
_WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:40000/api/auth/me
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    16.37ms    4.02ms  60.97ms   87.50%
    Req/Sec     1.96k   150.33     2.31k    62.50%
  Latency Distribution
     50%   16.02ms
     75%   17.80ms
     90%   20.41ms
     99%   29.30ms
  37810 requests in 10.00s, 21.52MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   3781.00
Transfer/sec:      2.15MB
"""


def test_percentiles_come_from_the_latency_distribution() -> None:
    result = lib.wrk_result("me", _WRK_REPORT)
    assert (result.requests, result.seconds) == (37810, 10.0)
    assert (result.p50_ms, result.p99_ms) == (16.02, 29.30)
    assert result.errors == 6
    assert lib.wrk_result("s", _WRK_REPORT.replace("16.02ms", "1.20s")).p50_ms == 1200.0
