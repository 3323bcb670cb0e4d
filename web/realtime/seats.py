"""The per-user socket cap across every web instance (``WS_MAX_SOCKETS_PER_USER``).

Each authenticated socket holds a seat: a member of the user's sorted set in Redis
(``<prefix>:ws:seats:<user id>``) named ``<instance>:<n>`` and scored with the time its lease
ends. Taking a seat is one script (drop the expired leases, count, add when under the cap), so
two instances racing for a user's last seat cannot both win. Each instance renews the leases of
its live sockets every ``RENEW_SECONDS``; the seats of an instance that died (SIGKILL, a lost
host) are not renewed and free themselves within ``LEASE_SECONDS``. Times are Redis's own
(``TIME``), so the instances' clocks do not matter.

When Redis is down or slow the cap falls back to this instance's own count (the hub's), logged:
a user may then hold the cap on each instance until Redis is back, rather than no socket at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator

import redis
import redis.asyncio as aredis
from aiohttp import web

from common.config import Settings
from common.redis import key
from web.realtime.connection import Connection

log = logging.getLogger(__name__)
LEASE_SECONDS = 30
RENEW_SECONDS = 10
# A socket's start never waits longer than this on Redis for its seat.
TAKE_TIMEOUT = 1.0
RENEW_BATCH = 500

# KEYS[1] the user's seats; ARGV: member, cap, lease seconds. 1 when taken, else 0.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
"""
# KEYS: seats of users, ARGV[1]: lease seconds, then one member per key (the same order).
_RENEW = """
local now = redis.call('TIME')
local until_ = tonumber(now[1]) + tonumber(now[2]) / 1000000 + tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, until_, ARGV[i + 1])
  redis.call('EXPIRE', k, tonumber(ARGV[1]) * 2)
end
return #KEYS
"""
_REDIS_DOWN = (redis.RedisError, OSError, TimeoutError)


class Seats:
    def __init__(self, client: aredis.Redis, settings: Settings, *, cap: int) -> None:
        self.client = client
        self.settings = settings
        self.cap = cap
        self.instance = uuid.uuid4().hex[:12]
        # The number of each socket's member (``<instance>:<n>``): an int per socket, not a string.
        self.held: dict[Connection, int] = {}
        self.fallbacks = 0  # seats granted on this instance's own count (Redis unavailable)
        self._numbers = itertools.count(1)
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)
        self._task: asyncio.Task[None] | None = None

    def _key(self, user_id: int) -> str:
        return key(self.settings, "ws", "seats", user_id)

    def _member(self, number: int) -> str:
        return f"{self.instance}:{number}"

    async def take(self, conn: Connection, *, local_count: int) -> bool:
        """A seat for ``conn`` (True), or False when its user holds the cap across instances.
        ``local_count``: the user's sockets on this instance, the cap when Redis cannot say."""
        number = next(self._numbers)
        try:
            taken = await asyncio.wait_for(
                self._take(keys=[self._key(conn.user_id)],
                           args=[self._member(number), self.cap, LEASE_SECONDS]),
                TAKE_TIMEOUT)
        except _REDIS_DOWN as exc:
            self.fallbacks += 1
            log.warning("socket seats unavailable; this instance's count applies",
                        extra={"error": type(exc).__name__})
            return local_count < self.cap
        if taken:
            self.held[conn] = number
        return bool(taken)

    async def give_back(self, conn: Connection) -> None:
        number = self.held.pop(conn, None)
        if number is None:
            return
        with contextlib.suppress(*_REDIS_DOWN):  # the lease then ends on its own
            await asyncio.wait_for(self.client.zrem(self._key(conn.user_id), self._member(number)),
                                   TAKE_TIMEOUT)

    async def renew(self) -> None:
        """Extend the leases of this instance's live sockets (re-adding them if Redis lost them);
        a socket given back meanwhile is removed again."""
        held = list(self.held.items())
        for start in range(0, len(held), RENEW_BATCH):
            batch = held[start:start + RENEW_BATCH]
            await self._renew(keys=[self._key(conn.user_id) for conn, _ in batch],
                              args=[LEASE_SECONDS, *(self._member(n) for _, n in batch)])
        gone = [(conn, number) for conn, number in held if conn not in self.held]
        for conn, number in gone:
            await self.client.zrem(self._key(conn.user_id), self._member(number))

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await self.renew()
            except _REDIS_DOWN as exc:
                log.warning("socket seats not renewed", extra={"error": type(exc).__name__})

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._renew_forever(),
                                                            name="ws-seats")

    async def stop(self) -> None:
        """Stop renewing and give every seat back (a clean shutdown frees them at once)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in list(self.held):
            await self.give_back(conn)


async def seats_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the instance's seats, renewed while it runs."""
    from web.keys import REDIS, SEATS, SETTINGS

    settings = app[SETTINGS]
    seats = Seats(app[REDIS], settings, cap=settings.ws_max_sockets_per_user)
    app[SEATS] = seats
    seats.start()
    yield
    await seats.stop()
