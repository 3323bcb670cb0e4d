"""Auth figures (printed, never asserted), each run beside its baseline in the same run:

1. ``GET /api/auth/me`` of the real web process (token check, account gate in memory, one compiled
   query) beside a bare aiohttp handler reading the same row with one raw psycopg query, and a
   bare JSON handler. Target: at least 90% of the raw handler's req/s, p99 within 1.2x
   (docs/performance.md).
2. ``GET /health`` p99 while 20 clients sign in as fast as they can (bcrypt at the configured
   cost, 12 by default) against the same figure idle. Target: at most 3x idle, because bcrypt
   runs on its own bounded pool and never on the event loop.

    .venv/bin/python bench/auth.py [--seconds 10] [--connections 64] [--only me,health]

Every request goes to 127.0.0.1 and every load is bounded in time and count. The benchmark has a
database (``savebucks_bench_auth``) and a Redis key prefix of its own, so it can run beside the
other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lib import (
    PYTHON,
    ROOT,
    Result,
    bench_env,
    client_load,
    load,
    median_row,
    prepare_database,
    server,
    table,
    web_server,
)

DB_NAME = "savebucks_bench_auth"
EMAIL = "bench@example.com"
PASSWORD = "bench password 123"
LOGIN_CLIENTS = 20
# The columns of the app's profile (UserProfile): the bare handler reads the row the app answers.
PROFILE_SQL = (
    "SELECT id, email, name, avatar, role, status, balance, pending_balance, created_at, "
    "referral_code, payouts_frozen FROM users WHERE id = %(id)s"
)


def _env() -> dict[str, str]:
    return bench_env(
        DB_NAME,
        RATE_LIMIT_LOGIN="100000000/minute",
        RATE_LIMIT_LOGIN_EMAIL="100000000/minute",
    )


def _prepare(env: dict[str, str]) -> int:
    """A fresh, migrated database with one user; returns its id."""
    from sqlalchemy import create_engine, insert

    from common.models import User
    from common.security.passwords import hash_password

    prepare_database(env)
    engine = create_engine(env["DATABASE_URL"])
    with engine.begin() as conn:
        user_id = conn.execute(
            insert(User).values(
                email=EMAIL, name="Bench", password_hash=hash_password(
                    PASSWORD, rounds=int(env["BCRYPT_ROUNDS"])
                ),
            ).returning(User.id)
        ).scalar_one()
    engine.dispose()
    return int(user_id)


def _token(env: dict[str, str], user_id: int) -> str:
    from common.config import load_settings
    from common.security.tokens import issue_access_token

    settings = load_settings(env)
    return issue_access_token(settings, user_id=user_id, email=EMAIL, role="user")


def _server_pid(base: str) -> int:
    """The pid of the process listening on ``base``'s port (``ss``, Debian's iproute2)."""
    port = urllib.parse.urlsplit(base).port
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True,
                         check=False).stdout
    return int(re.search(r"pid=(\d+)", out).group(1))  # type: ignore[union-attr]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(base: str, run: Callable[[], Result]) -> Result:
    """``run()``'s figures plus the server's CPU per request: a figure that other load on the
    machine disturbs far less than requests per second."""
    pid = _server_pid(base)
    before = _cpu_seconds(pid)
    result = run()
    spent = _cpu_seconds(pid) - before
    if result.requests:
        result.extra["server CPU us/req"] = f"{spent / result.requests * 1e6:.0f}"
    return result


RAW = "bare aiohttp + raw psycopg row"


def _me(args: argparse.Namespace, env: dict[str, str], user_id: int) -> None:
    results: list[Result] = []
    auth = {"Authorization": f"Bearer {_token(env, user_id)}"}
    common = {"seconds": args.seconds, "connections": args.connections}
    with server([PYTHON, "bench/bare.py", "--mode", "json"], env=env) as bare:
        results.append(_measured(bare, lambda: load("bare aiohttp JSON", f"{bare}/bare", **common)))
    raw_rounds: list[Result] = []
    rounds: list[Result] = []
    # The machine drifts over a run (above all the disk): the bare handler is measured before,
    # between and after the app's rounds, and the app is compared with the median of the three.
    for step in ("bare", "app", "bare", "app", "bare"):
        if step == "bare":
            name = f"{RAW} ({len(raw_rounds) + 1})"
            with server([PYTHON, "bench/bare.py", "--mode", "sql", "--sql", PROFILE_SQL],
                        env=env) as raw:
                raw_rounds.append(_measured(raw, lambda name=name, raw=raw: load(  # type: ignore[misc]
                    name, f"{raw}/bare?id={user_id}", **common)))
            rounds.append(raw_rounds[-1])
            continue
        with web_server(env) as web:
            load("warm-up", f"{web}/api/auth/me", seconds=2, connections=8, headers=auth)
            rounds.append(_measured(web, lambda web=web: load(  # type: ignore[misc]
                "GET /api/auth/me", f"{web}/api/auth/me", headers=auth, **common)))
    baseline = median_row(RAW, raw_rounds)
    table(f"GET /api/auth/me, {args.connections} connections, {args.seconds}s each",
          [baseline, *results, *rounds], baseline=baseline.name)


def _login_load(url: str, seconds: float) -> None:
    """Child process: 20 clients signing in back to back; prints its Result as JSON."""
    body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
    result = client_load("logins", url, connections=LOGIN_CLIENTS, seconds=seconds,
                         max_requests=100_000, method="POST",
                         headers={"Content-Type": "application/json"}, body=body)
    print(json.dumps({"requests": result.requests, "seconds": result.seconds,
                      "p50": result.p50_ms, "p99": result.p99_ms, "errors": result.errors}))


def _health_under_logins(args: argparse.Namespace, env: dict[str, str]) -> None:
    health_connections = 8
    with web_server(env) as web:
        idle = load("GET /health, idle", f"{web}/health", seconds=args.seconds,
                    connections=health_connections)
        logins = subprocess.Popen(
            [PYTHON, __file__, "--login-load", f"{web}/api/auth/login",
             "--seconds", str(args.seconds + 2)],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        try:
            busy = load(f"GET /health, {LOGIN_CLIENTS} clients signing in", f"{web}/health",
                        seconds=args.seconds, connections=health_connections)
            out, _ = logins.communicate(timeout=args.seconds + 60)
        finally:
            if logins.poll() is None:
                logins.kill()
    figures = json.loads(out.strip().splitlines()[-1])
    busy.extra["logins/s"] = f"{figures['requests'] / figures['seconds']:.1f}"
    busy.extra["login p99 ms"] = f"{figures['p99']:.0f}"
    busy.extra["login errors"] = str(figures["errors"])
    table(f"/health while signing in (bcrypt cost {env['BCRYPT_ROUNDS']}, "
          f"{env.get('PASSWORD_HASH_WORKERS', '2')} hash threads)", [idle, busy],
          baseline="GET /health, idle")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", default="me,health", help="comma-separated parts to run")
    parser.add_argument("--login-load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.login_load:
        _login_load(args.login_load, args.seconds)
        return
    env = _env()
    user_id = _prepare(env)
    parts = set(args.only.split(","))
    if "me" in parts:
        _me(args, env, user_id)
    # On two cores, two hashing threads leave the event loop no core of its own.
    for workers in ("1", "2") if "health" in parts else ():
        _health_under_logins(args, {**env, "PASSWORD_HASH_WORKERS": workers})


if __name__ == "__main__":
    main()
