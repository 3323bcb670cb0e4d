"""What every benchmark shares: a database of its own, servers in subprocesses, a load generator
and a table printer. Benchmarks print figures; they never pass or fail on a time.

Load comes from ``wrk`` (Debian's package) when it is installed, since a load generator written in
Python would compete with the server for the same two cores; otherwise from a bounded aiohttp
client loop. Every request goes to 127.0.0.1, bounded in count and time.

What was measured is printed with the figures: ``prepare_database`` reads the server's version and
durability settings (``fsync``, ``synchronous_commit``, ``full_page_writes``) and ``table`` prints
them under every table. A write benchmark refuses a non-durable server (writes there are several
times faster, docs/performance.md) unless it runs with ``--allow-non-durable``; the default
DATABASE_URL, the machine's PostgreSQL on 127.0.0.1:5432, is durable.

``BENCH_SMOKE=1`` (``bench/run_all --smoke``) caps every load at ``SMOKE_SECONDS``: CI runs each
benchmark that way so that one a change broke fails, with figures nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_DB = "savebucks_bench"
# Benchmarks whose figures are writes: a server that does not flush them would flatter them.
WRITE_BENCHMARKS = frozenset({"auth", "clicks", "money"})
NON_DURABLE_FLAG = "--allow-non-durable"
# Taken off the command line here, before each benchmark's own argparse sees it, and handed on
# through the environment: a benchmark's helper processes (bench/auth.py's sign-in workers, ...)
# import this module too, and must not refuse what their parent was allowed.
_NON_DURABLE_ENV = "BENCH_ALLOW_NON_DURABLE"
ALLOW_NON_DURABLE = NON_DURABLE_FLAG in sys.argv or os.environ.get(_NON_DURABLE_ENV) == "1"
if NON_DURABLE_FLAG in sys.argv:
    sys.argv.remove(NON_DURABLE_FLAG)
if ALLOW_NON_DURABLE:
    os.environ[_NON_DURABLE_ENV] = "1"
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
SMOKE_SECONDS = 1


def bench_env(database: str = BENCH_DB, **extra: str) -> dict[str, str]:
    """The environment of benchmark servers: a database of their own (one per benchmark, so two
    benchmarks never drop each other's), quiet logs, test secrets."""
    base = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parts = urllib.parse.urlsplit(base)
    # A run of its own (the smoke test's) suffixes its databases so that it never drops another's.
    database += os.environ.get("BENCH_DB_SUFFIX", "")
    env = dict(os.environ)
    env.update(
        APP_ENV="test",
        DATABASE_URL=parts._replace(path=f"/{database}").geturl(),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        REDIS_PREFIX=f"sb{database}",
        JWT_SECRET="bench-secret-that-is-long-enough-for-hs256-0123456789",
        FLOWER_BASIC_AUTH="ops:bench",
        LOG_LEVEL="WARNING",
        BCRYPT_ROUNDS=os.environ.get("BCRYPT_ROUNDS", "12"),
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Durability:
    """What a PostgreSQL server promises about a commit, as ``SHOW`` reports it."""

    version: str
    fsync: str
    synchronous_commit: str
    full_page_writes: str

    @property
    def durable(self) -> bool:
        # synchronous_commit local/remote_write/remote_apply still flush the local WAL first.
        return (self.fsync == "on" and self.synchronous_commit != "off"
                and self.full_page_writes == "on")

    def describe(self) -> str:
        state = "durable" if self.durable else "NOT durable: writes are faster than in production"
        return (f"database: PostgreSQL {self.version}, fsync={self.fsync}, "
                f"synchronous_commit={self.synchronous_commit}, "
                f"full_page_writes={self.full_page_writes} ({state})")


def durability(url: str) -> Durability:
    """The durability settings of the server ``url`` (any driver prefix) names."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True, connect_timeout=10) as conn:
        shown = [conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                 for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")]
    return Durability(*shown)


# The database this benchmark prepared: printed under each of its tables.
DATABASE: Durability | None = None


def check_durable(found: Durability, *, writes: bool, allowed: bool) -> None:
    """Refuse to measure writes on a server that does not make them durable, unless allowed."""
    if writes and not found.durable and not allowed:
        raise SystemExit(f"{found.describe()}\nrefused: this benchmark measures writes; point "
                         f"DATABASE_URL at a durable server or pass {NON_DURABLE_FLAG}")


def prepare_database(env: dict[str, str], *, fresh: bool = True, writes: bool | None = None) -> str:
    """Create (or recreate) the database ``env`` names, migrated; returns its libpq URL.
    Reads the server's durability first (``DATABASE``), and refuses a non-durable one for a write
    benchmark (``writes``: by default, whether this script is one of ``WRITE_BENCHMARKS``).

    A fresh database is a copy of a migrated template (``_template``): copying an empty schema
    takes a fraction of a second where running every migration takes seconds, and benchmarks make
    many databases (every smoke run in CI does)."""
    global DATABASE
    from sqlalchemy import create_engine, text

    url = env["DATABASE_URL"]
    parts = urllib.parse.urlsplit(url.replace("+psycopg", ""))
    name = parts.path.lstrip("/")
    admin = create_engine(
        parts._replace(scheme="postgresql+psycopg", path="/postgres").geturl(),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if fresh and exists:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        if fresh or not exists:
            template = _template(conn, env)
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    # Read in the benchmark's database: a database's own settings (ALTER DATABASE) count too.
    DATABASE = durability(url)
    print(DATABASE.describe(), flush=True)
    if writes is None:
        writes = Path(sys.argv[0]).stem in WRITE_BENCHMARKS
    check_durable(DATABASE, writes=writes, allowed=ALLOW_NON_DURABLE)
    if not fresh and exists:
        # An existing database kept for reuse may predate a migration.
        subprocess.run([PYTHON, "-m", "common.cli", "migrate"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    return parts.geturl()


_TEMPLATE_PREFIX = "sbbench_template_"


def _template(conn: Any, env: dict[str, str]) -> str:
    """The name of an empty database migrated to this checkout's migrations, made on first use.

    Named by a digest of the migration files, so a changed or added migration makes a new one
    (and older ones are dropped); made under an advisory lock, so two benchmarks starting at once
    do not both build it; built under a temporary name and renamed when complete, so a run killed
    half-way never leaves a half-migrated template behind."""
    from sqlalchemy import text

    digest = hashlib.sha256()
    for path in sorted((ROOT / "migrations").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    name = _TEMPLATE_PREFIX + digest.hexdigest()[:16]
    conn.execute(text("SELECT pg_advisory_lock(hashtext('savebucks bench template'))"))
    try:
        have = {row[0] for row in conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
            {"p": _TEMPLATE_PREFIX + "%"})}
        if name not in have:
            building = name + "_building"
            for stale in have:
                conn.execute(text(f'DROP DATABASE "{stale}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{building}"'))
            parts = urllib.parse.urlsplit(env["DATABASE_URL"])
            build_env = {**env, "DATABASE_URL": parts._replace(path=f"/{building}").geturl()}
            subprocess.run([PYTHON, "-m", "common.cli", "migrate"], env=build_env, check=True,
                           cwd=ROOT, stdout=subprocess.DEVNULL)
            conn.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(hashtext('savebucks bench template'))"))
    return name


def rerun_on_non_durable(*, timeout: float = 30 * 60) -> None:
    """Run this benchmark again, whole, on a throwaway private PostgreSQL with ``fsync``,
    ``synchronous_commit`` and ``full_page_writes`` off (like the development and test clusters),
    so that its tables appear twice and the cost of durability shows. Only after a durable run:
    the rerun (or a run already on a non-durable server) does not start another, nor does a smoke
    run (CI's own server is not durable anyway). The private cluster is stopped and its folder
    removed afterwards."""
    if DATABASE is None or not DATABASE.durable or SMOKE:
        return
    from tests.fixtures.servers import PrivatePostgres, pg_bin

    if pg_bin() is None:
        print("no PostgreSQL server binaries here: the non-durable rerun is skipped", flush=True)
        return
    folder = Path(tempfile.mkdtemp(prefix="sb-bench-pg-"))
    os.chmod(folder, 0o755)  # the postgres user must reach its data folder
    cluster = PrivatePostgres(folder / "pg")
    try:
        cluster.start()
        print(f"rerun on a private non-durable PostgreSQL (port {cluster.port})", flush=True)
        subprocess.run([PYTHON, sys.argv[0], *sys.argv[1:], NON_DURABLE_FLAG], cwd=ROOT,
                       env={**os.environ, "DATABASE_URL": cluster.url}, check=True,
                       timeout=timeout)
    finally:
        cluster.close()
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(argv: Sequence[str], *, env: dict[str, str], ready_path: str = "/health",
                   port: int | None = None, timeout: float = 30.0,
                   ) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run a server subprocess on ``port``; yields it and its port once ``ready_path`` answers."""
    import urllib.request

    port = port or free_port()
    proc = subprocess.Popen([*argv, "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=1):
                    break
            except Exception:  # noqa: BLE001  (not up yet, however it fails; the deadline ends it)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not answer {ready_path} in {timeout}s") from None
                time.sleep(0.1)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def server(argv: Sequence[str], *, env: dict[str, str], **kwargs: object) -> Iterator[str]:
    """``server_process`` for callers that need only the base URL."""
    with server_process(argv, env=env, **kwargs) as (_, port):  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{port}"


def web_server(env: dict[str, str], **kwargs: object) -> contextlib.AbstractContextManager[str]:
    return server([PYTHON, "-m", "web"], env=env, **kwargs)  # type: ignore[arg-type]


def smoke_seconds(seconds: float) -> float:
    """``seconds`` of load, at most ``SMOKE_SECONDS`` in smoke mode."""
    return min(seconds, SMOKE_SECONDS) if SMOKE else seconds


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def median_row(name: str, rounds: list[Result]) -> Result:
    """One row of the rounds' median requests per second and p99 (each its own median)."""
    rps = statistics.median(r.rps for r in rounds)
    p99 = statistics.median(r.p99_ms for r in rounds)
    cpu = [float(r.extra["server CPU us/req"]) for r in rounds if "server CPU us/req" in r.extra]
    extra = {"server CPU us/req": f"{statistics.median(cpu):.0f}"} if cpu else {}
    return Result(f"{name}, median of {len(rounds)}", round(rps * 10), 10.0,
                  statistics.median(r.p50_ms for r in rounds), p99, 0, extra)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(name: str, url: str, *, connections: int = 64, seconds: int = 10, threads: int = 2,
        method: str = "GET", headers: dict[str, str] | None = None, body: str | None = None,
        lua_script: str | None = None, rotate: Sequence[Variant] | None = None) -> Result:
    """Load ``url`` with wrk for a fixed time; latency percentiles from its ``--latency`` table.
    ``lua_script``: a script of the caller's own, instead of one made of method, headers, body.
    ``rotate``: each request takes one of these (query, headers) at random (``Variant``)."""
    seconds = max(1, int(smoke_seconds(seconds)))  # wrk takes whole seconds
    threads = max(1, min(threads, connections))  # wrk refuses more threads than connections
    if rotate:
        lua_script = _rotating_lua(urllib.parse.urlsplit(url).path, method, headers or {}, rotate, body)
    lua = lua_script or ""
    if lua_script is None and (method != "GET" or body is not None or headers):
        lines = [f'wrk.method = "{method}"']
        if body is not None:
            lines.append(f"wrk.body = [[{body}]]")
        for key, value in (headers or {}).items():
            lines.append(f'wrk.headers["{key}"] = "{value}"')
        lua = "\n".join(lines)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
             script.name, url],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script.name)
    return wrk_result(name, out)


def wrk_result(name: str, out: str) -> Result:
    """The figures of wrk's ``--latency`` report. A percentile is read from its own line of the
    distribution: a thread statistics line ends in a percentage too (``+/- Stdev`` of ``87.50%``),
    which an unanchored ``50%`` matched, giving the next line's first word as the p50."""
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    took = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Result(name, total, took, p50, p99, errors)


class Variant(NamedTuple):
    """One kind of request of a rotating load: a query string (without ``?``; empty for none)
    and headers, added to the load's own. Many members' requests, for instance: one token each."""

    query: str
    headers: dict[str, str]


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rotating_lua(path: str, method: str, headers: dict[str, str], rotate: Sequence[Variant],
                  body: str | None) -> str:
    """A wrk script whose every request takes one of ``rotate`` at random (each thread its own
    seed, so two threads do not walk the same sequence)."""
    rows = ",\n".join(
        "{" + _lua_string(f"{path}?{v.query}" if v.query else path) + ", {"
        + ", ".join(f"[{_lua_string(k)}] = {_lua_string(val)}" for k, val in v.headers.items())
        + "}}" for v in rotate)
    base = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    return f"""local variants = {{
{rows}
}}
local base = {{{base}}}
local threads = 0
function setup(thread) thread:set("seed", threads + 1); threads = threads + 1 end
function init(args) math.randomseed(1000 * seed + 7) end
function request()
    local v = variants[math.random(#variants)]
    local h = {{}}
    for k, value in pairs(base) do h[k] = value end
    for k, value in pairs(v[2]) do h[k] = value end
    return wrk.format({_lua_string(method)}, v[1], h{", " + _lua_string(body) if body is not None else ""})
end
"""


async def _client_load(name: str, url: str, *, connections: int, seconds: float, max_requests: int,
                       method: str, headers: dict[str, str] | None, body: bytes | None,
                       rotate: Sequence[Variant] | None = None) -> Result:
    import random

    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline and len(latencies) < max_requests:
            started = time.perf_counter()
            target, sent = url, headers
            if rotate:
                variant = random.choice(rotate)
                target = f"{url}?{variant.query}" if variant.query else url
                sent = {**(headers or {}), **variant.headers}
            async with session.request(method, target, headers=sent, data=body) as resp:
                await resp.read()
                if resp.status >= 400:
                    errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    took = time.monotonic() - started
    return _summary(name, latencies, took, errors)


def client_load(name: str, url: str, *, connections: int = 64, seconds: float = 10.0,
                max_requests: int = 200_000, method: str = "GET",
                headers: dict[str, str] | None = None, body: bytes | None = None,
                rotate: Sequence[Variant] | None = None) -> Result:
    """The same measurement from a Python client, for when wrk is absent (or for odd requests)."""
    seconds = smoke_seconds(seconds)
    return asyncio.run(_client_load(name, url, connections=connections, seconds=seconds,
                                    max_requests=max_requests, method=method, headers=headers,
                                    body=body, rotate=rotate))


def load(name: str, url: str, **kwargs: object) -> Result:
    if shutil.which("wrk"):
        kwargs.pop("max_requests", None)  # wrk is bounded by its duration
        return wrk(name, url, **kwargs)  # type: ignore[arg-type]
    kwargs.pop("threads", None)
    if isinstance(kwargs.get("body"), str):
        kwargs["body"] = kwargs["body"].encode()  # type: ignore[union-attr]
    return client_load(name, url, **kwargs)  # type: ignore[arg-type]


def _summary(name: str, latencies: list[float], took: float, errors: int) -> Result:
    if not latencies:
        return Result(name, 0, took, float("nan"), float("nan"), errors)
    ordered = sorted(latencies)
    return Result(name, len(ordered), took, statistics.median(ordered),
                  ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], errors)


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    if not ordered:
        return float("nan"), float("nan")
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def table(title: str, results: Sequence[Result], *, baseline: str | None = None) -> str:
    """A markdown table; with ``baseline`` named, each row shows its share of that row's req/s."""
    base = next((r for r in results if r.name == baseline), None)
    extra_keys = sorted({k for r in results for k in r.extra})
    head = ["variant", "req/s", "p50 ms", "p99 ms", "errors"]
    if base:
        head += ["vs baseline req/s", "vs baseline p99"]
    head += extra_keys
    lines = [f"### {_titled(title)}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r.name, f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", str(r.errors)]
        if base:
            row += [f"{r.rps / base.rps:.0%}" if base.rps else "-",
                    f"{r.p99_ms / base.p99_ms:.2f}x" if base.p99_ms else "-"]
        row += [r.extra.get(k, "") for k in extra_keys]
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join([*lines, *_database_line()]) + "\n"
    print(text, flush=True)
    return text


# The risk rules on and off (docs/risk.md), for the hot paths' benchmarks to print a row of each:
# "on" with a blocked-address list of a realistic size and mix of prefix lengths that does not
# hold 127.0.0.1 (every click is looked up, none is listed).
_BLOCKED = ",".join([*(f"10.{i}.0.0/16" for i in range(200)), *(f"192.0.2.{i}/32" for i in range(50)),
                     "100.64.0.0/10", "198.18.0.0/15", "2001:db8::/32", "fc00::/7"])
RISK_VARIANTS: dict[str, dict[str, str]] = {
    "risk rules on": {"RISK_ENABLED": "true", "RISK_BLOCKED_CIDRS": _BLOCKED},
    "risk rules off": {"RISK_ENABLED": "false"},
}


def risk_rounds() -> list[tuple[str, dict[str, str]]]:
    """The variants in ABBA order, each run twice (named ``... (1)``, ``... (2)``), so that the
    tables' growth and the machine's other load fall on both alike."""
    on, off = RISK_VARIANTS.items()
    return [(f"{name} ({n})", env) for (name, env), n in ((on, 1), (off, 1), (off, 2), (on, 2))]


def figures_table(title: str, rows: dict[str, dict[str, str]]) -> str:
    """A markdown table of named figures (rows) for each variant (columns), for benchmarks whose
    figures are not requests per second; the database line under it, as ``table``."""
    names = list(rows)
    keys = list(dict.fromkeys(k for figures in rows.values() for k in figures))
    lines = [f"### {_titled(title)}", "", "| figure | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    lines += [f"| {k} | " + " | ".join(rows[n].get(k, "-") for n in names) + " |" for k in keys]
    text = "\n".join([*lines, *_database_line()]) + "\n"
    print(text, flush=True)
    return text


def _titled(title: str) -> str:
    """A table's title, marked when its database did not make writes durable."""
    if DATABASE is not None and not DATABASE.durable:
        return f"{title} [database NOT durable]"
    return title


def _database_line() -> list[str]:
    """The line under a table saying which server it measured (none for a database-less one)."""
    return ["", DATABASE.describe()] if DATABASE is not None else []
