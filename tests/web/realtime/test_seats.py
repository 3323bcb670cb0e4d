"""The per-user socket cap across instances: two apps on one Redis count one user's sockets
together; a dead instance's seats free themselves; Redis down falls back to the instance's own
count."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
import redis.asyncio as aredis

from common.config import Settings
from tests.web.realtime.conftest import close_code, connect, eventually
from web.keys import SEATS
from web.realtime import seats as seats_module
from web.realtime.seats import Seats


@dataclass(eq=False)
class FakeConn:
    user_id: int


async def test_the_cap_counts_sockets_on_every_instance(start_app, ws_settings, someone) -> None:  # type: ignore[no-untyped-def]
    one, two = await start_app(ws_settings), await start_app(ws_settings)
    me = someone()
    mine = [await connect(one, me), await connect(one, me), await connect(two, me)]  # cap is 3
    for app in (two, one):
        extra = await app.ws_connect("/ws", params={"token": me.token})
        assert await close_code(extra) == 4429
    await mine[0].close()
    await eventually(lambda: len(one.app[SEATS].held) == 1)
    mine.append(await connect(two, me))  # the seat freed on one is taken on two
    assert len(two.app[SEATS].held) == 2
    for ws in mine[1:]:
        await ws.close()


async def test_racing_instances_never_pass_the_cap(aredis_client: aredis.Redis, settings: Settings) -> None:
    a, b = Seats(aredis_client, settings, cap=3), Seats(aredis_client, settings, cap=3)
    conns = [FakeConn(7) for _ in range(20)]
    taken = await asyncio.gather(*((a if i % 2 else b).take(c, local_count=0)
                                   for i, c in enumerate(conns)))
    assert sum(taken) == 3


async def test_a_dead_instances_seats_free_themselves(
    aredis_client: aredis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(seats_module, "LEASE_SECONDS", 1)
    dead, alive = Seats(aredis_client, settings, cap=2), Seats(aredis_client, settings, cap=2)
    assert await dead.take(FakeConn(8), local_count=0)
    assert await alive.take(FakeConn(8), local_count=0)
    assert not await alive.take(FakeConn(8), local_count=1)
    started = time.monotonic()
    while not await alive.take(FakeConn(8), local_count=1):  # ``dead`` never renews
        assert time.monotonic() - started < 5, "the dead instance's seat was never freed"
        await asyncio.sleep(0.2)
    for _ in range(3):  # the living instance's leases are renewed: they outlive one lease
        await asyncio.sleep(0.5)
        await alive.renew()
    assert not await alive.take(FakeConn(8), local_count=2)


async def test_renewal_puts_seats_back_after_redis_lost_them(
    aredis_client: aredis.Redis, settings: Settings,
) -> None:
    seats = Seats(aredis_client, settings, cap=1)
    conn = FakeConn(9)
    assert await seats.take(conn, local_count=0)
    await aredis_client.flushdb()  # a Redis restarted without persistence
    assert await Seats(aredis_client, settings, cap=1).take(FakeConn(9), local_count=0)
    await aredis_client.flushdb()
    await seats.renew()
    assert not await Seats(aredis_client, settings, cap=1).take(FakeConn(9), local_count=0)
    await seats.give_back(conn)
    assert await Seats(aredis_client, settings, cap=1).take(FakeConn(9), local_count=0)


async def test_with_redis_down_the_instance_count_applies(settings: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    client = aredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        seats = Seats(client, settings, cap=2)
        assert await seats.take(FakeConn(10), local_count=1)
        assert not await seats.take(FakeConn(10), local_count=2)
        assert seats.fallbacks == 2
        await seats.give_back(FakeConn(10))  # nothing held: nothing to do
        assert any("this instance's count applies" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()
