"""Outage drill: a real web process under a steady mix of requests (catalogue and profile reads,
the leaderboard, a write through the unit of work, postback credits) while its PostgreSQL or its
Redis is stopped, or killed, and started again.

Every answer must be a 2xx or a 503 in the envelope, never a 500; no request may take long (the
dependency's connect and pool waits are bounded); once the server is back, requests succeed again
within a few seconds, without 500s from stale pooled connections; and the ledger adds up.

The servers are private (``tests/fixtures/servers.py``), never the machine's shared ones. CI runs
the short form (2 s outages); ``SB_DRILL=long`` holds each outage 10 s.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from common.config import Settings
from tests.fixtures.outage import Load, Seed, drill_env, ledger_problems, prepare, web_process
from tests.fixtures.servers import PrivatePostgres, PrivateRedis, pg_bin, redis_bin

LONG = os.environ.get("SB_DRILL") == "long"
OUTAGE = 10.0 if LONG else 2.0
# The slowest answer allowed, outage or not: the web waits at most WEB_DB_POOL_TIMEOUT (1 s) for a
# connection, and 0.1 s once it knows the database is unreachable; the rest is margin for a
# loaded 2-core machine. (Before these bounds, requests hung 10 s and then answered 500.)
MAX_SECONDS = 2.0
# Time after the restart within which every request must succeed again.
RECOVERY = 5.0

pytestmark = [
    pytest.mark.outage,
    pytest.mark.skipif(pg_bin() is None or redis_bin() is None,
                       reason="needs PostgreSQL and Redis server binaries"),
]


@pytest.fixture
def servers(running_pair: tuple[PrivatePostgres, PrivateRedis]) -> tuple[PrivatePostgres, PrivateRedis]:
    return running_pair


@pytest.fixture(scope="module")
def drill(private_pair: tuple[PrivatePostgres, PrivateRedis]) -> tuple[dict[str, str], Seed]:
    pg, rd = private_pair
    env = drill_env(pg, rd)
    return env, prepare(pg, env)


async def _drill(base: str, settings: Settings, seed: Seed, *, stop: object, start: object) -> Load:
    """Load before (1 s), during the outage, and after the restart until it recovers."""
    load = Load(base, settings, seed)
    runner = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(1.0)
        load.mark("down")
        await asyncio.to_thread(stop)  # type: ignore[arg-type]
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(start)  # type: ignore[arg-type]
        load.mark("up")
        await asyncio.sleep(RECOVERY)
        load.mark("settled")
        await asyncio.sleep(1.5)
    finally:
        load.stop()
        await asyncio.wait_for(runner, 30)
    return load


def _check(load: Load, *, during: set[int]) -> None:
    print(load.summary())
    assert load.statuses("before").keys() == {200}, load.summary()
    assert 500 not in load.statuses(), load.summary()
    assert set(load.statuses("outage")) <= during | {200}, load.summary()
    slowest = max(a.seconds for a in load.answers)
    assert slowest < MAX_SECONDS, load.summary()
    assert load.statuses("after").keys() == {200}, load.summary()
    assert load.of("after"), "no request answered after recovery"


def _assert_recovered_quickly(load: Load) -> None:
    """Every route answered 200 again while recovering: no long tail of stale connections."""
    recovering = load.of("recovering")
    for route in ("offers", "me", "leaderboard", "read-all", "postback"):
        assert any(a.status == 200 for a in recovering if a.route == route), (route, load.summary())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_postgres_outage_answers_503_fast_and_recovers(
    servers: tuple[PrivatePostgres, PrivateRedis], drill: tuple[dict[str, str], Seed],
    settings: Settings, how: str,
) -> None:
    pg, _ = servers
    env, seed = drill
    with web_process(env) as (_, base):
        load = await _drill(base, settings, seed, stop=getattr(pg, how), start=pg.start)
    _check(load, during={503})
    _assert_recovered_quickly(load)
    assert ledger_problems(env) == []


@pytest.mark.timeout(120)
async def test_redis_outage_keeps_credits_and_reads_going(
    servers: tuple[PrivatePostgres, PrivateRedis], drill: tuple[dict[str, str], Seed],
    settings: Settings,
) -> None:
    _, rd = servers
    env, seed = drill
    with web_process(env) as (_, base):
        load = await _drill(base, settings, seed, stop=rd.kill, start=rd.start)
    _check(load, during={503})
    # The rate limiter fails open and the credit needs only PostgreSQL: postbacks keep crediting,
    # and the reads that need no Redis keep answering.
    for route in ("postback", "offers", "me", "read-all"):
        outage = load.of("outage", route)
        assert outage and {a.status for a in outage} == {200}, (route, load.summary())
    assert ledger_problems(env) == []
