"""Leaderboard and admin analytics with 100,000 users and 1,000,000 sales (figures printed, no
verdicts), each beside a bare SQL aggregate over the raw rows in the same run:

1. GET /api/leaderboard p99 vs the bare GROUP BY over approved sales;
2. GET /api/admin/analytics/dashboard and /revenue?period=30 p99 vs the bare aggregates they
   replace;
3. a full leaderboard rebuild's time, and one day's rollup fill time.

Data is generated set-based (INSERT ... SELECT generate_series) over the last 365 days.

    .venv/bin/python bench/admin.py [--users 100000] [--sales 1000000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
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

DB_NAME = "savebucks_bench_admin"


def _env() -> dict[str, str]:
    return bench_env(DB_NAME)


# Statuses: 70% approved, 10% pending, 10% rejected, 10% reversed; times over the last 365 days.
_SEED = [
    """INSERT INTO users (email, password_hash, name, created_at)
       SELECT 'u' || i || '@bench.example', 'x', 'User ' || i,
              now() - make_interval(secs => (%(users)s - i) * (365.0 * 86400 / %(users)s))
       FROM generate_series(1, %(users)s) i""",
    """INSERT INTO offers (title, category, network, external_id, status, payout)
       VALUES ('Bench offer', 'games', 'bench', 'b1', 'active', 1)""",
    """INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount, commission_amount,
                          status, hold_until, created_at, decided_at)
       SELECT 1 + (i::bigint * 7919) %% %(users)s, 1, 'bench', 's' || i, amt, amt,
              CASE WHEN i %% 10 < 7 THEN 'approved' WHEN i %% 10 = 7 THEN 'pending'
                   WHEN i %% 10 = 8 THEN 'rejected' ELSE 'reversed' END,
              t, t, CASE WHEN i %% 10 = 7 THEN NULL ELSE t + interval '1 hour' END
       FROM (SELECT i, (1 + (i %% 997)) / 100.0 AS amt,
                    now() - interval '2 hours'
                      - make_interval(secs => (%(sales)s - i) * (365.0 * 86400 / %(sales)s)) AS t
             FROM generate_series(1, %(sales)s) i) g""",
    """INSERT INTO ledger_entries (user_id, amount, kind, reference_type, reference_id,
                                   idempotency_key, created_at)
       SELECT user_id, commission_amount, 'sale_credit', 'sale', id, 'sale_credit:' || id,
              created_at + interval '1 hour'
       FROM sales WHERE status IN ('approved', 'reversed')""",
    """INSERT INTO ledger_entries (user_id, amount, kind, reference_type, reference_id,
                                   idempotency_key, created_at)
       SELECT user_id, -commission_amount, 'sale_reversal', 'sale', id, 'sale_reversal:' || id,
              decided_at
       FROM sales WHERE status = 'reversed'""",
    "UPDATE users SET role = 'admin' WHERE id = 1",
    "ANALYZE",
]

# What the endpoints would cost without rollups: the same figures straight from the raw rows.
_BARE_DASHBOARD = """
SELECT (SELECT count(*) FROM users) AS total_users,
       (SELECT count(*) FROM users WHERE status = 'active') AS active_users,
       (SELECT count(*) FROM offers WHERE status = 'active') AS total_offers,
       (SELECT coalesce(sum(commission_amount), 0) FROM sales WHERE status = 'approved') AS revenue,
       (SELECT coalesce(sum(amount), 0) FROM payments WHERE status = 'pending') AS pending,
       (SELECT count(*) FROM users WHERE created_at > now() - interval '7 days') AS new_users,
       (SELECT count(*) FROM sales WHERE created_at > now() - interval '7 days') AS recent
"""
_BARE_REVENUE = """
SELECT d::date AS day, coalesce(sum(e.amount), 0) AS revenue
FROM generate_series(current_date - 29, current_date, interval '1 day') d
LEFT JOIN ledger_entries e ON e.kind IN ('sale_credit', 'sale_reversal')
     AND e.created_at >= d AND e.created_at < d + interval '1 day'
GROUP BY d ORDER BY d
"""
_BARE_BOARD = """
SELECT user_id, sum(commission_amount) AS score FROM sales
WHERE status = 'approved' GROUP BY user_id ORDER BY score DESC, user_id LIMIT 10
"""


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _bare(libpq: str, name: str, sql: str, runs: int) -> Result:
    import psycopg

    with psycopg.connect(libpq) as conn:
        samples = [_timed(lambda: conn.execute(sql).fetchall()) for _ in range(runs)]
    p50, p99 = percentiles(samples)
    return Result(name, runs, sum(samples) / 1000, p50, p99)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--bare-runs", type=int, default=20)
    # Latency, not throughput: one connection measures a request without queueing behind others.
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args()

    env = _env()
    os.environ.update(env)
    libpq = prepare_database(env)
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(libpq, autocommit=True) as conn:
        for statement in _SEED:
            conn.execute(statement, {"users": args.users, "sales": args.sales})
    print(f"generated {args.users:,} users and {args.sales:,} sales in "
          f"{time.perf_counter() - started:.1f} s", flush=True)

    from common.config import get_settings
    from common.security.tokens import issue_access_token
    from common.services import analytics
    from common.services import leaderboard as lb
    from common.uow import SyncContext

    settings = get_settings()
    ctx = SyncContext.create(settings, pool_size=2)
    now = dt.datetime.now(dt.UTC)
    with ctx.transaction() as session:
        rebuild_ms = _timed(lambda: lb.rebuild_current(session, client=ctx.redis,
                                                       settings=settings, now=now))
    fill_started = time.perf_counter()
    days = analytics.fill_pending_days(ctx.transaction, limit=1000)
    fill_all_s = time.perf_counter() - fill_started
    yesterday = analytics.today() - dt.timedelta(days=1)
    lo, hi = analytics.bounds(yesterday)
    with ctx.transaction() as session:
        one_day_ms = _timed(lambda: analytics.fill_day(session, day=yesterday))
        bare_day_ms = min(_timed(lambda: analytics.live_figures(session, lo=lo, hi=hi))
                          for _ in range(3))
    ctx.close()
    bare_rebuild = _bare(libpq, "bare: all-time GROUP BY over approved sales", _BARE_BOARD, 3)
    print()
    print("### Rebuild and rollup")
    print()
    print("| step | ms |")
    print("|---|---|")
    print(f"| full leaderboard rebuild (current + previous buckets, 4 periods) | {rebuild_ms:,.0f} |")
    print(f"| {bare_rebuild.name} (p50) | {bare_rebuild.p50_ms:,.0f} |")
    print(f"| one day's rollup fill ({yesterday}) | {one_day_ms:,.1f} |")
    print(f"| bare: the same day's figures from raw rows, no upsert (best of 3) | {bare_day_ms:,.1f} |")
    print(f"| backfill of {days} days | {fill_all_s * 1000:,.0f} |")
    print()

    token = issue_access_token(settings, user_id=1, email="u1@bench.example", role="admin")
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    with web_server(env) as base:
        for name, path in [
            ("GET /api/leaderboard?period=all_time&limit=10", "/api/leaderboard?period=all_time&limit=10"),
            ("GET /api/leaderboard?period=weekly&limit=100", "/api/leaderboard?period=weekly&limit=100"),
            ("GET /api/admin/analytics/dashboard", "/api/admin/analytics/dashboard"),
            ("GET /api/admin/analytics/revenue?period=30", "/api/admin/analytics/revenue?period=30"),
        ]:
            results.append(load(name, base + path, connections=args.connections,
                                seconds=args.seconds, threads=1, headers=headers))
    results.append(_bare(libpq, "bare SQL: leaderboard top 10 from raw sales", _BARE_BOARD,
                         args.bare_runs))
    results.append(_bare(libpq, "bare SQL: dashboard figures from raw rows", _BARE_DASHBOARD,
                         args.bare_runs))
    results.append(_bare(libpq, "bare SQL: 30 days of revenue from raw ledger", _BARE_REVENUE,
                         args.bare_runs))
    table(f"Reads ({args.connections} connection(s); bare rows: one connection, sequential runs)",
          results)
    dash = next(r for r in results if r.name.endswith("dashboard"))
    bare_dash = next(r for r in results if r.name.startswith("bare SQL: dashboard"))
    print()
    print(f"dashboard p99 {dash.p99_ms:.2f} ms vs bare aggregate p99 {bare_dash.p99_ms:.1f} ms: "
          f"{bare_dash.p99_ms / dash.p99_ms:.0f}x", flush=True)


if __name__ == "__main__":
    main()
