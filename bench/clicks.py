"""Click figures (printed, never asserted), beside their baseline in the same run:

``POST /api/offers/{id}/click`` of the real web process (token check, account gate, the per-user
rate limit's Redis round trip, one statement that reads the offer and inserts the click, the
tracking URL filled), with the risk rules on (a blocked-address list looked up on every click)
and off, beside a bare aiohttp handler running the same statement on a raw psycopg
pool of the same size, without any of the checks. Target: at least 80% of the bare handler's
req/s, p99 within 1.5x.

    .venv/bin/python bench/clicks.py [--seconds 10] [--connections 64] [--database NAME]

Every request goes to 127.0.0.1 and every load is bounded in time and count. The benchmark has a
database (``savebucks_bench_clicks``) and a Redis key prefix of its own. Each click commits a row:
say which PostgreSQL configuration (durable, or ``fsync=off``) the figures come from.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.auth import _measured
from bench.lib import (
    PYTHON,
    bench_env,
    load,
    prepare_database,
    risk_rounds,
    server,
    table,
    web_server,
)

DB_NAME = "savebucks_bench_clicks"
TRACKING_URL = "https://track.example.com/go?sub={clickId}&u={userId}"
BARE = "bare aiohttp + psycopg, same statement"


def _env(database: str = DB_NAME) -> dict[str, str]:
    # The per-user limit would refuse the load generator's one user: still counted (its Redis
    # round trip is part of the measure), never reached.
    return bench_env(database, RATE_LIMIT_CLICK="100000000/minute")


def _prepare(env: dict[str, str]) -> tuple[int, int]:
    """A fresh database with one member and one active offer with a tracking URL."""
    import psycopg

    libpq = prepare_database(env)
    with psycopg.connect(libpq, autocommit=True) as conn:
        user_id = conn.execute("INSERT INTO users (email, password_hash, name) "
                               "VALUES ('bench@example.com', 'x', 'Bench') RETURNING id").fetchone()
        offer_id = conn.execute(
            "INSERT INTO offers (title, category, network, external_id, status, network_payout, "
            "payout, tracking_url) VALUES ('Bench offer', 'games', 'bench', 'o1', 'active', 10, 7, "
            "%s) RETURNING id", (TRACKING_URL,)).fetchone()
    assert user_id and offer_id
    return int(user_id[0]), int(offer_id[0])


def _token(env: dict[str, str], user_id: int) -> str:
    from common.config import load_settings
    from common.security.tokens import issue_access_token

    return issue_access_token(load_settings(env), user_id=user_id, email="bench@example.com",
                              role="user")


def _clicks(libpq_env: dict[str, str]) -> int:
    import psycopg

    url = libpq_env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM clicks").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database", default=DB_NAME,
                        help="the benchmark's own database (dropped and made again)")
    args = parser.parse_args()
    env = _env(args.database)
    user_id, offer_id = _prepare(env)
    pool = env.get("DB_POOL_SIZE", "10")
    # No request cap: wrk takes none (the Python fallback keeps its own bound).
    common = {"seconds": args.seconds, "connections": args.connections, "method": "POST"}
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    results = []
    with server([PYTHON, "bench/bare.py", "--mode", "click", "--pool", pool], env=env) as bare:
        url = f"{bare}/bare?offer_id={offer_id}&user_id={user_id}"
        load("warm-up", url, seconds=2, connections=8, method="POST")
        results.append(_measured(bare, lambda: load(BARE, url, **common)))
    auth = {"Authorization": f"Bearer {_token(env, user_id)}"}
    for variant, risk in risk_rounds():
        with web_server({**env, **risk}) as web:
            url = f"{web}/api/offers/{offer_id}/click"
            load("warm-up", url, seconds=2, connections=8, method="POST", headers=auth)
            name = f"POST /api/offers/{{id}}/click, {variant}"
            results.append(_measured(web, lambda name=name, url=url: load(  # type: ignore[misc]
                name, url, headers=auth, **common)))
    table(f"Clicks, {args.connections} connections, {args.seconds}s each (pool {pool}; "
          f"{_clicks(env)} clicks stored)", results, baseline=BARE)


if __name__ == "__main__":
    main()
