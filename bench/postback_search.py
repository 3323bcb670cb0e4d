"""The admin postback search (``GET /api/admin/postbacks``) over 1,000,000 log rows (figures
printed, no verdicts), each query through the real HTTP route beside the same SQL run bare on a
psycopg connection:

1. by transaction id; 2. by user; 3. by network + outcome + one day; 4. the same with a refusing
verdict (the partial index); 5. the whole log, unfiltered (its total counts every row).

Rows are generated set-based (INSERT ... SELECT generate_series, in bounded batches) over the
last 30 days, in a database of this benchmark's own that it creates, migrates and drops.

    .venv/bin/python bench/postback_search.py [--rows 1000000] [--seconds 8] [--connections 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lib import (
    Result,
    bench_env,
    load,
    percentiles,
    prepare_database,
    table,
    web_server,
)

DB_NAME = "savebucks_bench_pbsearch"
USERS = 50_000
DAYS = 30
BATCH = 200_000

# Outcomes by i % 20: 12 credited, 3 duplicate, 1 unknown_user, 1 rejected (accepted), then
# 1 bad_signature, 1 ip_refused, 1 invalid (refused: no outcome). Networks by i % 4. Two rows
# share a transaction id (a credit and its repeat, or a retry).
_SEED = """
INSERT INTO postback_log (network, method, params, ip, verdict, outcome, sale_id, trace_id,
                          txn_id, user_id, created_at)
SELECT (ARRAY['testnet', 'cpx', 'sr', 'tapjoy'])[1 + i %% 4], 'GET',
       jsonb_build_object('user_id', u::text, 'txn_id', 'txn-' || (i / 2), 'offer_id', '*',
                          'amount', '2.00', 'status', '1', 'sig', md5(i::text) || md5(u::text)),
       '203.0.113.' || (i %% 200),
       CASE WHEN i %% 20 < 17 THEN 'accepted' WHEN i %% 20 = 17 THEN 'bad_signature'
            WHEN i %% 20 = 18 THEN 'ip_refused' ELSE 'invalid' END,
       CASE WHEN i %% 20 < 12 THEN 'credited' WHEN i %% 20 < 15 THEN 'duplicate'
            WHEN i %% 20 = 15 THEN 'unknown_user' WHEN i %% 20 = 16 THEN 'rejected' END,
       CASE WHEN i %% 20 < 15 THEN i / 2 END, md5(i::text), 'txn-' || (i / 2), u,
       now() - make_interval(secs => (CAST(%(rows)s AS bigint) - i) * (CAST(%(days)s AS int) * 86400.0 / CAST(%(rows)s AS bigint)))
FROM (SELECT i, 1 + (i * 7919) %% CAST(%(users)s AS int) AS u
      FROM generate_series(CAST(%(first)s AS bigint), CAST(%(last)s AS bigint)) i) g
"""
_ADMIN = ("INSERT INTO users (email, password_hash, name, role) "
          "VALUES ('admin@bench.example', 'x', 'Admin', 'admin') RETURNING id")


def _seed(libpq: str, rows: int) -> int:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(libpq, autocommit=True) as conn:
        for first in range(1, rows + 1, BATCH):
            conn.execute(_SEED, {"rows": rows, "days": DAYS, "users": USERS, "first": first,
                                 "last": min(rows, first + BATCH - 1)})
        admin = conn.execute(_ADMIN).fetchone()[0]  # type: ignore[index]
        conn.execute("VACUUM ANALYZE postback_log")  # the visibility map: counts from the index
    print(f"generated {rows:,} postback log rows in {time.perf_counter() - started:.1f} s",
          flush=True)
    return int(admin)


def _cases(rows: int) -> list[tuple[str, dict[str, str]]]:
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=DAYS // 2)).date()
    return [
        ("txnId", {"txnId": f"txn-{rows // 3}"}),
        ("userId", {"userId": str(1 + (rows // 3 * 7919) % USERS)}),
        ("network + outcome + day", {"network": "cpx", "outcome": "credited",
                                     "from": day.isoformat(), "to": str(day + dt.timedelta(1))}),
        ("network + refusal + day", {"network": "cpx", "outcome": "bad_signature",
                                     "from": day.isoformat(), "to": str(day + dt.timedelta(1))}),
        ("unfiltered (counts the whole log)", {}),
    ]


def _bare(libpq: str, name: str, query: dict[str, str], runs: int) -> tuple[Result, str]:
    """The route's own statement for ``query``, run bare: (timings, the plan's first line)."""
    import psycopg
    from psycopg.rows import dict_row

    from common.services.postback_log import search_queries
    from web.handlers.admin.postbacks import PostbackLogQuery

    q = PostbackLogQuery.model_validate(query)
    search = q.search()
    rows_query, _ = search_queries(search.shape())
    params = rows_query.params({**search.params(), "limit": q.limit, "offset": q.offset})
    samples = []
    with psycopg.connect(libpq, autocommit=True, row_factory=dict_row) as conn:
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute(rows_query.sql, params).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
        plan = conn.execute("EXPLAIN " + rows_query.sql, params).fetchall()
    lines = [str(next(iter(r.values()))).strip().removeprefix("->").strip() for r in plan]
    scans = [line.split("  (")[0] for line in lines if "Scan" in line]
    p50, p99 = percentiles(samples)
    return Result(f"bare SQL: {name}", runs, sum(samples) / 1000, p50, p99), "; ".join(scans)


def _drop(env: dict[str, str]) -> None:
    from sqlalchemy import create_engine, text

    parts = urllib.parse.urlsplit(env["DATABASE_URL"])
    admin = create_engine(parts._replace(path="/postgres").geturl(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--bare-runs", type=int, default=200)
    parser.add_argument("--max-requests", type=int, default=20_000)
    # Latency, not throughput: one connection measures a request without queueing behind others.
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the database for a rerun")
    args = parser.parse_args()

    env = bench_env(DB_NAME)
    os.environ.update(env)
    libpq = prepare_database(env)
    try:
        _run(args, env, libpq)
    finally:
        if not args.keep:
            _drop(env)


def _run(args: argparse.Namespace, env: dict[str, str], libpq: str) -> None:
    from common.config import get_settings
    from common.security.tokens import issue_access_token

    admin = _seed(libpq, args.rows)
    token = issue_access_token(get_settings(), user_id=admin, email="admin@bench.example",
                               role="admin")
    headers = {"Authorization": f"Bearer {token}"}
    results, plans = [], []
    # wrk is bounded by its duration; the Python client also by a request count.
    bound = {} if shutil.which("wrk") else {"max_requests": args.max_requests}
    with web_server(env) as base:
        for name, query in _cases(args.rows):
            url = f"{base}/api/admin/postbacks?{urllib.parse.urlencode(query)}"
            load(f"GET /api/admin/postbacks: {name}", url, connections=1, seconds=1,
                 headers=headers, **bound)  # warm-up: plans prepared, pages cached
            results.append(load(f"GET /api/admin/postbacks: {name}", url,
                                connections=args.connections, seconds=args.seconds, threads=1,
                                headers=headers, **bound))
    for name, query in _cases(args.rows):
        bare, plan = _bare(libpq, name, query, args.bare_runs)
        results.append(bare)
        plans.append((name, plan))
    table(f"Admin postback search over {args.rows:,} log rows ({args.connections} "
          f"connection(s); bare rows: the route's SQL on one psycopg connection, "
          f"{args.bare_runs} sequential runs)", results)
    print("Plans (the scans of each statement):")
    for name, plan in plans:
        print(f"- {name}: {plan}")


if __name__ == "__main__":
    main()
