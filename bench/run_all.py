"""Run every benchmark in turn and gather their tables into one markdown file.

    bench/run_all [--only health,auth] [--out bench/results/latest.md] [--smoke] [-- --seconds 5]

A benchmark is a ``bench/*.py`` script with a ``__main__`` block that prints ``table(...)`` (see
bench/lib.py); each prints its figures with its bare baseline beside them, and the database server
it measured (version and durability) under each table. One that fails is reported in the file
with the end of its output, and the others still run. Arguments after ``--`` go to every
benchmark.

``--smoke`` runs every benchmark for a second or two of load at small sizes (``SMOKE_ARGS``), with
``BENCH_SMOKE=1``: the figures mean nothing, but a benchmark that a change broke fails the run.
CI does this (tests/bench/test_smoke.py), so benchmarks cannot rot unnoticed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lib import PYTHON, ROOT

BENCH = ROOT / "bench"
DEFAULT_OUT = BENCH / "results" / "latest.md"
TIMEOUT = 30 * 60
SMOKE_TIMEOUT = 120
_NOT_BENCHMARKS = {"__init__.py", "lib.py", "run_all.py"}
# Sizes small enough for a second or two of work each; the load itself is capped by BENCH_SMOKE.
SMOKE_ARGS: dict[str, list[str]] = {
    "admin": ["--users", "200", "--sales", "1000", "--bare-runs", "2"],
    # Not its postbacks part: its own load loop has no bound per request, and a stalled request
    # there waits out aiohttp's five-minute default. Add "postbacks" back once it is bounded.
    "money": ["--sales", "500", "--latency-samples", "5", "--seconds", "1",
              "--only", "approvals,offers,events"],
    "postback_search": ["--rows", "2000", "--bare-runs", "3", "--max-requests", "200",
                        "--seconds", "1"],
    "ws_fanout": ["--sockets", "20", "50", "--publishes", "3", "--stream", "40", "--seconds", "2",
                  "--stream-sockets", "20"],
    "ws_memory": ["--sockets", "50", "--warm", "10"],
}
SMOKE_ENV = {"BENCH_SMOKE": "1", "BCRYPT_ROUNDS": "4"}


@dataclass
class Outcome:
    name: str
    status: int
    seconds: float
    tables: list[str]
    tail: str


def benchmarks() -> list[Path]:
    found = []
    for path in sorted(BENCH.glob("*.py")):
        text = path.read_text()
        if path.name not in _NOT_BENCHMARKS and "table(" in text and "__main__" in text:
            found.append(path)
    return found


def tables_in(output: str) -> list[str]:
    """The markdown tables ``bench.lib.table`` printed: a ``### title``, the ``|`` rows, and the
    ``database:`` line under them when there is one."""
    blocks, current = [], None
    for line in output.splitlines():
        if line.startswith("### "):
            current = [line, ""]
            blocks.append(current)
        elif current is not None and line.startswith("|"):
            current.append(line)
        elif current is not None and len(current) > 2 and line.startswith("database: "):
            current += ["", line]
            current = None
        elif current is not None and len(current) > 2 and line.strip():
            current = None
    return ["\n".join(block) for block in blocks if len(block) > 2]


def run(path: Path, extra: list[str], *, smoke: bool = False) -> Outcome:
    started = time.monotonic()
    name = f"bench/{path.name}"
    print(f"run_all: {name} ...", file=sys.stderr, flush=True)
    argv = [PYTHON, str(path), *(SMOKE_ARGS.get(path.stem, []) if smoke else []), *extra]
    env = {**os.environ, **SMOKE_ENV} if smoke else None
    timeout = SMOKE_TIMEOUT if smoke else TIMEOUT
    # A session of its own: on a timeout the servers it started go with it, not only itself.
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        output, errors = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        _end_group(proc)
        output, _ = proc.communicate()
        status, errors = -1, f"timed out after {timeout} s"
    tail = "\n".join((output + "\n" + errors).strip().splitlines()[-15:])
    return Outcome(name, status, time.monotonic() - started, tables_in(output), tail)


def _end_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the benchmark's process group, SIGKILL what is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(outcomes: list[Outcome], *, smoke: bool = False) -> str:
    lines = [
        "# SaveBucks benchmarks" + (" (smoke run: figures mean nothing)" if smoke else ""),
        "",
        f"- run: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}, commit {_commit()}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"- load generator: {'wrk' if shutil.which('wrk') else 'bounded aiohttp client (no wrk)'}",
        f"- load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "- the database each table measured (version, durability) is the line under it",
        ("- each table has its bare baseline in the same run; compare rows within a table, not "
         "across machines"),
        "",
    ]
    for o in outcomes:
        state = "ok" if o.status == 0 else f"FAILED (exit {o.status})"
        lines += [f"## {o.name}: {state}, {o.seconds:.0f} s", ""]
        lines += [*(t + "\n" for t in o.tables)] if o.tables else ["(no table printed)", ""]
        if o.status != 0:
            lines += ["```", o.tail, "```", ""]
    return "\n".join(lines)


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names (without .py)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--smoke", action="store_true",
                        help="a second or two of each at small sizes: does every benchmark run?")
    args = parser.parse_args(own)
    chosen = benchmarks()
    if args.only:
        wanted = {n.strip().removesuffix(".py") for n in args.only.split(",")}
        chosen = [p for p in chosen if p.stem in wanted]
    outcomes = [run(path, extra, smoke=args.smoke) for path in chosen]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(outcomes, smoke=args.smoke))
    print(f"run_all: wrote {args.out}", file=sys.stderr)
    return 0 if all(o.status == 0 for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
