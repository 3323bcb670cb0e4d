"""The money paths, each beside a bare baseline in the same run (figures printed, no verdicts):

1. sale approvals/s through the beat batch path vs bare psycopg running the approval statement,
   with no referee among the sales' owners and with half the sales a referee's;
2. postbacks: req/s and p50/p99 at 50 concurrent (new sales with the risk rules on and off, and
   repeats of one transaction) vs a bare aiohttp + psycopg handler running the same two
   statements on a pool of the same size, measured before, between and after the app's rounds
   (the median of its rounds is the baseline); and once with the signature check and both rate
   limits added to it, done the plain way (``bench/bare.py --mode postback-checked``);
3. GET /api/offers (page of 20 out of 10,000, category filter) vs a bare aiohttp + raw psycopg
   handler running the same SQL;
4. postback -> ``balance:updated`` seen by a Redis subscriber, with SALE_HOLD_SECONDS=0.

    .venv/bin/python bench/money.py [--seconds 10] [--sales 20000] [--latency-samples 200]
        [--only approvals,offers,postbacks,events] [--postback-connections 50] [--database NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.auth import _measured as measured
from bench.lib import (
    PYTHON,
    ROOT,
    Result,
    bench_env,
    load,
    median_row,
    percentiles,
    prepare_database,
    rerun_on_non_durable,
    risk_rounds,
    server,
    table,
    web_server,
)
from bench.postback_urls import COUNT, SECRET, postback_load

DB_NAME = "savebucks_bench_money"
CATEGORIES = ["games", "surveys", "shopping", "apps", "videos", "finance", "travel", "food",
              "music", "sports"]


def _env(database: str = DB_NAME, **extra: str) -> dict[str, str]:
    return bench_env(database, POSTBACK_SECRET_BENCH=SECRET, PAYOUT_SANDBOX_LATENCY_MS="0",
                     **extra)


def _seed(libpq: str, users: int) -> None:
    import psycopg

    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, password_hash, name) "
            "SELECT 'u' || g || '@bench.local', 'x', 'User ' || g FROM generate_series(1, %s) g",
            (users,))
        conn.execute(
            "INSERT INTO offers (title, description, category, network, external_id, status, "
            "network_payout, payout) SELECT 'Offer ' || g, 'Bench offer', "
            "(%s::text[])[1 + g %% 10], 'bench', 'o' || g, "
            "CASE WHEN g %% 20 = 0 THEN 'paused' ELSE 'active' END, 10, 7 "
            "FROM generate_series(1, 10000) g", (CATEGORIES,))
        conn.execute("ANALYZE")


def _seed_referees(libpq: str) -> None:
    """250 referees (users 1501-1750), each referred by one of users 1001-1250 at sign-up, from
    addresses of their own: each of their approved sales pays a referral."""
    import psycopg

    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, password_hash, name, referred_by, signup_ip) "
            "SELECT 'r' || g || '@bench.local', 'x', 'Referee ' || g, 1000 + g, "
            "'10.1.' || (g / 250) || '.' || (g % 250) FROM generate_series(1, 250) g")
        conn.execute("ANALYZE users")


def _pending_sales(libpq: str, count: int, tag: str, *, referees: bool = False) -> None:
    """``count`` due sales over 500 users; with ``referees``, every other one belongs to one of
    the 250 referees instead."""
    import psycopg

    owner = ("CASE WHEN g %% 2 = 0 THEN 1 + g %% 500 ELSE 1501 + g %% 250 END" if referees
             else "1 + g %% 500")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount, "
            f"commission_amount, status, hold_until) SELECT {owner}, 1, 'seed', %s || g, 1.00, "
            "0.70, 'pending', now() - interval '1 s' FROM generate_series(1, %s) g",
            (tag, count))
        conn.execute(
            "UPDATE users SET pending_balance = pending_balance + t.total FROM ("
            "SELECT user_id, sum(commission_amount) total FROM sales "
            "WHERE status = 'pending' AND external_id LIKE %s GROUP BY user_id) t "
            "WHERE users.id = t.user_id", (tag + "%",))


def _beat_loop(ctx: object) -> int:
    from common.services.sales import approve_due_sales

    done = 0
    # As the beat task runs its batches (workers/tasks/sales.py): each batch's after-commit
    # effects overlap the next batch's statement.
    with ctx.unit.effects_behind():  # type: ignore[attr-defined]
        while True:
            with ctx.transaction() as session:  # type: ignore[attr-defined]
                n = approve_due_sales(session, batch=500)
            done += n
            if n == 0:
                return done


def _bare_loop(libpq: str, sql: str, params: dict[str, object]) -> int:
    import psycopg

    done = 0
    with psycopg.connect(libpq) as conn:
        while True:
            with conn.transaction():
                rows = conn.execute(sql, params).fetchall()
            n = rows[0][0] if rows else 0
            done += n
            if n == 0:
                return done


def bench_approvals(env: dict[str, str], libpq: str, count: int, rounds: int = 8) -> list[Result]:
    """The beat task's loop (one statement per batch: approval, ledger, referrals, notifications,
    outbox; then the Redis publish and marking) against bare psycopg running the same statement in
    the same batches (no SQLAlchemy, no publish); each with no referee among the sales' owners,
    and with half the sales a referee's (each paying its referrer a referral in the statement).
    The variants alternate in ``rounds`` (ABBA order, ``count / rounds`` sales each), so that the
    tables' growth and the machine's other load fall on both alike."""
    import datetime as dt

    os.environ.update(env)
    from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

    from common.config import load_settings
    from common.services.referrals import approval_params
    from common.services.sales import _APPROVE_DUE
    from common.uow import SyncContext

    settings = load_settings()
    ctx = SyncContext.create(settings, pool_size=2)
    sql = str(_APPROVE_DUE.compile(dialect=psycopg_dialect.dialect()))
    params = {"batch": 500, "trace_id": None,
              **approval_params(settings, dt.datetime.now(dt.UTC))}
    _seed_referees(libpq)
    names = {(False, False): "bare psycopg, same statement",
             (False, True): "bare psycopg, same statement, half the sales a referee's",
             (True, False): "beat batch path (+ publish to Redis)",
             (True, True): "beat batch path, half the sales a referee's"}
    totals = {key: [0, 0.0] for key in names}
    for n in range(rounds):
        for beat in (False, True):
            for referees in ((False, True) if n % 2 == 0 else (True, False)):
                _pending_sales(libpq, count // rounds, f"r{n}-{beat:d}{referees:d}-",
                               referees=referees)
                started = time.perf_counter()
                done = _beat_loop(ctx) if beat else _bare_loop(libpq, sql, params)
                totals[(beat, referees)][0] += done
                totals[(beat, referees)][1] += time.perf_counter() - started
    ctx.close()
    results = [Result(name, int(totals[key][0]), totals[key][1], float("nan"), float("nan"))
               for key, name in names.items()]
    for beat in (False, True):
        none, half = (totals[(beat, r)] for r in (False, True))
        print(f"{'beat' if beat else 'bare'}: approvals/s with half the sales a referee's = "
              f"{(half[0] / half[1]) / (none[0] / none[1]):.0%} of without")
    return results


def _signed(params: dict[str, str]) -> dict[str, str]:
    from common.postbacks import generic_signature

    return {**params, "sig": generic_signature(SECRET, params)}


async def _postback_load(base: str, *, connections: int, seconds: float, max_requests: int,
                         unique: bool) -> Result:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    deadline = time.monotonic() + seconds
    repeat = _signed({"user_id": "1", "offer_id": "o1", "txn_id": "repeat", "amount": "2.00",
                      "status": "1"})

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline and len(latencies) < max_requests:
            n = next(counter)
            params = _signed({"user_id": str(1 + n % 500), "offer_id": "o1",
                              "txn_id": f"u{n}-{time.time_ns()}", "amount": "2.00",
                              "status": "1"}) if unique else repeat
            t0 = time.perf_counter()
            async with session.get(f"{base}/api/postbacks/bench", params=params) as resp:
                await resp.read()
                errors += resp.status != 200
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    took = time.monotonic() - started
    p50, p99 = percentiles(latencies)
    name = "postback, new sale each" if unique else "postback, repeats of one txn"
    return Result(name, len(latencies), took, p50, p99, errors)


def bench_postbacks(env: dict[str, str], seconds: int, connections: int) -> list[Result]:
    """The app against a bare aiohttp + psycopg handler running the same two statements on a pool
    of the same size (DB_POOL_SIZE), at the same concurrency."""
    # The limits per source IP and per network and source IP would refuse the load generator on
    # 127.0.0.1 (both are still counted: their Redis round trips are part of the measure).
    env = {**env, "RATE_LIMIT_POSTBACK": "10000000/minute",
           "RATE_LIMIT_POSTBACK_IP": "10000000/minute"}
    pool = env.get("DB_POOL_SIZE", "10")

    def run(base: str, unique: bool, first: int) -> Result:
        # wrk with URLs signed in advance when it is installed (bench/postback_urls.py): a Python
        # load generator would take CPU from the server on the same two cores.
        if shutil.which("wrk"):
            return postback_load(base, connections=connections, seconds=seconds, first=first,
                                 repeat=not unique)
        return asyncio.run(_postback_load(base, connections=connections, seconds=seconds,
                                          max_requests=100_000, unique=unique))

    # Each round's new sales start past the previous round's, so every postback is a new sale.
    offsets = itertools.count(0, COUNT)
    bare_rounds: list[Result] = []

    def bare_result(mode: str) -> Result:
        with server([PYTHON, "bench/bare.py", "--mode", mode, "--pool", pool], env=env) as bare:
            return measured(bare, lambda: run(bare, True, next(offsets)))

    def bare_round() -> Result:
        result = bare_result("postback")
        result.name = f"{BARE_POSTBACKS} ({len(bare_rounds) + 1})"
        bare_rounds.append(result)
        return result

    def checked_round() -> Result:
        # The bare handler with the signature and the two limits, each request its own Redis
        # call: how much of the gap is those duties, and how much the app's own way of doing them.
        result = bare_result("postback-checked")
        result.name = f"{BARE_POSTBACKS} + signature + both limits (own Redis call)"
        return result

    # Every round adds sales and log rows, and the durable server's checkpoints come and go:
    # the bare handler runs before, between and after the app's rounds, and the app is compared
    # with the median of its rounds (as bench/auth.py and bench/clicks.py do).
    results = [bare_round()]
    for variant, risk in risk_rounds():
        with web_server({**env, **risk}) as web:
            for unique in (True, False) if variant == "risk rules on (1)" else (True,):
                result = measured(web, lambda unique=unique: run(web, unique, next(offsets)))  # type: ignore[misc]
                result.name += f", {variant}"
                results.append(result)
        results.append(bare_round())
    results.append(checked_round())
    return [median_row(BARE_POSTBACKS, bare_rounds), *results]


BARE_POSTBACKS = "bare aiohttp + psycopg, same statements"


def offers_sql() -> str:
    """The app's page statement (category filter) for the bare handler."""
    from web.handlers.offers import _PAGES

    # The bare handler passes query strings as they come: cast them as the app's driver would.
    return _PAGES[(True, False)].sql.replace("%(limit)s", "%(limit)s::int").replace(
        "%(offset)s", "%(offset)s::int")


def bench_offers(env: dict[str, str], seconds: int, connections: int) -> list[Result]:
    sql = offers_sql()
    results = []
    with server([PYTHON, "bench/bare.py", "--mode", "sql", "--sql", sql], env=env) as bare:
        results.append(load("bare aiohttp + psycopg, same SQL",
                            f"{bare}/bare?category=games&limit=20&offset=0",
                            seconds=seconds, connections=connections))
    with web_server(env) as web:
        results.append(load("GET /api/offers?category=games&limit=20",
                            f"{web}/api/offers?category=games&limit=20",
                            seconds=seconds, connections=connections))
    return results


def bench_event_latency(env: dict[str, str], samples: int) -> Result:
    """Time from sending a credit postback to its ``balance:updated`` on the events channel."""
    import urllib.request

    import orjson
    import redis

    env = {**env, "SALE_HOLD_SECONDS": "0"}
    client = redis.Redis.from_url(env["REDIS_URL"])
    pubsub = client.pubsub()
    pubsub.subscribe(f"{env['REDIS_PREFIX']}:events")
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}

    def listen() -> None:
        while len(seen) < samples:
            message = pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                event = orjson.loads(message["data"])
                if event["event"] == "balance:updated" and event["targetId"] not in seen:
                    seen[event["targetId"]] = time.perf_counter()
            if stop.is_set():
                return

    stop = threading.Event()
    listener = threading.Thread(target=listen, daemon=True)
    celery = str(Path(PYTHON).parent / "celery")
    worker = subprocess.Popen(
        [celery, "-A", "workers.celery_app", "worker", "-Q", "sales,events", "-c", "2",
         "--loglevel", "WARNING", "-n", "benchmoney@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with web_server(env) as web:
            listener.start()
            time.sleep(3)  # let the worker connect before the first sample
            for n in range(samples):
                user = 1000 + n
                query = urllib.parse.urlencode(_signed({
                    "user_id": str(user), "offer_id": "o1", "txn_id": f"lat-{n}",
                    "amount": "1.00", "status": "1"}))
                sent[user] = time.perf_counter()
                with urllib.request.urlopen(f"{web}/api/postbacks/bench?{query}", timeout=10):
                    pass
                time.sleep(0.02)
            deadline = time.monotonic() + 30
            while len(seen) < samples and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        stop.set()
        worker.terminate()
        worker.wait(30)
        pubsub.close()
        client.close()
    latencies = [(seen[u] - sent[u]) * 1000 for u in sent if u in seen]
    p50, p99 = percentiles(latencies)
    return Result("postback -> balance:updated", len(latencies), 0.0, p50, p99,
                  samples - len(latencies))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sales", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--postback-connections", type=int, default=50)
    parser.add_argument("--only", default="approvals,offers,postbacks,events",
                        help="comma-separated parts to run")
    parser.add_argument("--database", default=DB_NAME,
                        help="the benchmark's own database (dropped and made again)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    env = _env(args.database)
    libpq = prepare_database(env)
    _seed(libpq, users=1500)
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs")

    if "approvals" in parts:
        table(f"Sale approvals, {args.sales} due sales, batches of 500",
              bench_approvals(env, libpq, args.sales),
              baseline="beat batch path (+ publish to Redis)")
    if "offers" in parts:
        table(f"GET /api/offers, 10,000 offers, {args.connections} connections, {args.seconds}s",
              bench_offers(env, args.seconds, args.connections),
              baseline="bare aiohttp + psycopg, same SQL")
    if "postbacks" in parts:
        rows = bench_postbacks(env, args.seconds, args.postback_connections)
        table(f"Postbacks at {args.postback_connections} concurrent, {args.seconds}s", rows,
              baseline=rows[0].name)  # the bare rounds' median
    if "events" in parts:
        table(f"Postback to balance:updated, SALE_HOLD_SECONDS=0, {args.latency_samples} samples",
              [bench_event_latency(env, args.latency_samples)])
    rerun_on_non_durable()  # the same tables on fsync=off, synchronous_commit=off


if __name__ == "__main__":
    main()
