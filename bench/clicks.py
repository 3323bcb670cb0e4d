"""Click figures (printed, never asserted), beside their baseline in the same run:

``POST /api/offers/{id}/click`` of the real web process (token check, account gate, one statement
that counts the member's rate limit, reads the offer and inserts the click, the tracking URL
filled), with the risk rules on (a blocked-address list looked up on every click) and off,
beside a bare aiohttp handler running the same statement on a raw psycopg pool of the same size,
without any of the checks, measured before, between and after the web's rounds (the baseline is
the median of those three). Target: at least 80% of the bare handler's req/s, p99 within 1.5x.
A second bare row runs the click's insert alone (no rate limit in the statement), to show what
the limit costs the database.

The load is many members clicking, as on the site: every request is a member drawn at random
from ``--members`` of them (each round of the web process has members of its own), under the
default ``RATE_LIMIT_CLICK``, which a member clicking like a person never meets (a round of 10 s
at 3,000 clicks/s gives each of 4,096 members about 7). One member sending thousands of clicks a
second is what the limit refuses, not load to measure.

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
    Result,
    Variant,
    bench_env,
    load,
    median_row,
    prepare_database,
    risk_rounds,
    server,
    table,
    web_server,
)

DB_NAME = "savebucks_bench_clicks"
TRACKING_URL = "https://track.example.com/go?sub={clickId}&u={userId}"
BARE = "bare aiohttp + psycopg, same statement"
BARE_INSERT = "bare aiohttp + psycopg, the insert alone (no limit)"


def _env(database: str = DB_NAME) -> dict[str, str]:
    return bench_env(database)


def _prepare(env: dict[str, str], members: int) -> tuple[list[list[int]], int]:
    """A fresh database with one active offer with a tracking URL, and ``members`` members for
    each round (the bare server's and the web process's four)."""
    import psycopg

    libpq = prepare_database(env)
    rounds = len(risk_rounds()) + 3 + 1  # the web's rounds, the bare rounds, the insert alone
    with psycopg.connect(libpq, autocommit=True) as conn:
        ids = [int(r[0]) for r in conn.execute(
            "INSERT INTO users (email, password_hash, name) SELECT 'bench' || n || '@example.com', "
            "'x', 'Bench ' || n FROM generate_series(1, %s) AS n RETURNING id",
            (members * rounds,)).fetchall()]
        offer_id = conn.execute(
            "INSERT INTO offers (title, category, network, external_id, status, network_payout, "
            "payout, tracking_url) VALUES ('Bench offer', 'games', 'bench', 'o1', 'active', 10, 7, "
            "%s) RETURNING id", (TRACKING_URL,)).fetchone()
    assert offer_id
    return [ids[i:i + members] for i in range(0, len(ids), members)], int(offer_id[0])


def _members(env: dict[str, str], user_ids: list[int]) -> list[Variant]:
    """One request kind per member: their own access token."""
    from common.config import load_settings
    from common.security.tokens import issue_access_token

    settings = load_settings(env)
    return [Variant("", {"Authorization": "Bearer " + issue_access_token(
        settings, user_id=u, email=f"bench{u}@example.com", role="user")}) for u in user_ids]


def _clicks(libpq_env: dict[str, str]) -> int:
    import psycopg

    url = libpq_env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM clicks").fetchone()
    return int(row[0]) if row else 0


def _each_member_once(url: str, tokens: list[Variant]) -> None:
    """One click of each member before the measure: a process verifies a member's token the
    first time it sees it, then keeps it (``VerifiedTokens``). A member clicks many times in a
    token's life, so the measure is of tokens already seen, not of 4,096 first sign-ins in ten
    seconds. Bounded: one request per member, 16 at a time, 60 s at most."""
    import asyncio

    import aiohttp

    async def run() -> None:
        queue = list(tokens)

        async def worker(session: aiohttp.ClientSession) -> None:
            while queue:
                async with session.post(url, headers=queue.pop().headers) as resp:
                    await resp.read()

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await asyncio.wait_for(asyncio.gather(*(worker(session) for _ in range(16))), 60)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--members", type=int, default=4096, help="members per round")
    parser.add_argument("--database", default=DB_NAME,
                        help="the benchmark's own database (dropped and made again)")
    args = parser.parse_args()
    env = _env(args.database)
    member_sets, offer_id = _prepare(env, args.members)
    pool = env.get("DB_POOL_SIZE", "10")
    # No request cap: wrk takes none (the Python fallback keeps its own bound).
    common = {"seconds": args.seconds, "connections": args.connections, "method": "POST"}
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    apps = iter(zip(risk_rounds(), member_sets[:4], strict=True))
    bares = iter(member_sets[4:7])
    results: list[Result] = []
    bare_rounds: list[Result] = []

    def bare_round(name: str, mode: str, members: list[int]) -> Result:
        rotate = [Variant(f"offer_id={offer_id}&user_id={u}", {}) for u in members]
        with server([PYTHON, "bench/bare.py", "--mode", mode, "--pool", pool], env=env) as bare:
            url = f"{bare}/bare"
            load("warm-up", url, seconds=2, connections=8, method="POST", rotate=rotate)
            return _measured(bare, lambda: load(name, url, rotate=rotate, **common))

    def app_round() -> Result:
        (variant, risk), members = next(apps)
        tokens = _members(env, members)
        with web_server({**env, **risk}) as web:
            url = f"{web}/api/offers/{offer_id}/click"
            load("warm-up", url, seconds=2, connections=8, method="POST", rotate=tokens)
            _each_member_once(url, tokens)
            name = f"POST /api/offers/{{id}}/click, {variant}"
            return _measured(web, lambda: load(name, url, rotate=tokens, **common))

    # The machine's state drifts over a run (the disk's flushes above all): the bare server is
    # measured before, between and after the app's rounds, and the app is compared with the
    # median of the three.
    for step in ("bare", "app", "app", "bare", "app", "app", "bare"):
        if step == "bare":
            bare_rounds.append(bare_round(f"{BARE} ({len(bare_rounds) + 1})", "click", next(bares)))
            results.append(bare_rounds[-1])
        else:
            results.append(app_round())
    results.insert(0, median_row(BARE, bare_rounds))
    results.append(bare_round(BARE_INSERT, "click-insert", member_sets[7]))
    table(f"Clicks, {args.connections} connections, {args.seconds}s each (pool {pool}; "
          f"{args.members} members a round; {_clicks(env)} clicks stored)", results,
          baseline=results[0].name)
    alone = next(r for r in results if r.name == BARE_INSERT)
    print(f"against the insert alone ({alone.rps:,.0f} req/s, p99 {alone.p99_ms:.2f} ms): " + ", ".join(
        f"{r.rps / alone.rps:.0%} p99 {r.p99_ms / alone.p99_ms:.2f}x" for r in results
        if r.name.startswith("POST") and alone.rps and alone.p99_ms))


if __name__ == "__main__":
    main()
