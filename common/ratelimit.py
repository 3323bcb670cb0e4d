"""Rate limits backed by Redis, shared by every web instance (a moving window per limit).

``await limiter.hit("login:ip", settings.rate_limit_login, ip)`` counts one request and raises
``RateLimited`` (rendered as 429 with ``Retry-After`` and ``RateLimit-*``) once the limit is spent.
``await limiter.hit_all(Check(...), Check(...))`` counts several limits of one request in ONE
Redis round trip, in order, as that many ``hit`` calls would: each limit before the first spent one
is counted, the spent one and those after it are not. Limits are the ``limits`` strings of the
settings ("10/minute", "5/10second"). The window stamps entries with ``time.time()``, so tests
move time with freezegun instead of sleeping.

The window is the ``limits`` library's moving window (its keys, its list of timestamps per key, its
rule), run by one script of ours (``_HIT``) so that a request's limits, and the wait of a spent
one, cost a single round trip: a hot path pays for its limits once, not twice per limit.

Redis failures fail open: losing the limiter must not take sign-in down with it (ARCHITECTURE.md:
losing Redis loses nothing that matters); the failure is logged. A Redis that stops answering
fails open too, after ``TIMEOUT``: the whole call (connect, write, read) is bounded by one
``asyncio.timeout`` rather than by redis-py's socket timeout, whose write timeout runs every
command's write in a task of its own (``asyncio.wait_for``) and an extra turn of the event loop;
a call cut short drops its connection (redis-py never reuses one a command was interrupted on).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from typing import Any, NamedTuple

import redis
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage

from common.config import Settings
from common.errors import RateLimited

log = logging.getLogger(__name__)
TIMEOUT = 2.0  # seconds for one call to Redis, its connection included

# KEYS: one moving window per limit, in order; ARGV: the time, then (limit, window seconds) per
# key. A window holds the stamps of the last ``limit`` hits, newest first; the limit is spent
# when the oldest of them is still inside the window. Returns 0 when every limit took the hit,
# else {the spent limit's position, its oldest stamp} (when it frees up a place).
_HIT = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    if limit < 1 then
        return {i, ARGV[1]}
    end
    local oldest = redis.call('lindex', key, limit - 1)
    if oldest and tonumber(oldest) >= now - expiry then
        return {i, oldest}
    end
    redis.call('lpush', key, now)
    redis.call('ltrim', key, 0, limit - 1)
    redis.call('expire', key, expiry)
end
return 0
"""


class SpentWindows:
    """Whose moving window is spent, and until when, as this process last learnt it: the refusal
    of a window's store, remembered so that a member who keeps knocking is refused without asking
    the store again. Exact, not a cache that can be stale: a spent window frees up only when its
    oldest stamp leaves it (``until``), and nobody adds a stamp to a spent window meanwhile, so
    until then the store would refuse too. At most ``size`` entries, the oldest dropped first.

    ``turn`` lets one request per key at a time ask the store (the others of that key wait for
    its answer, then look here again): a burst of one member's requests then holds one database
    connection, not one each while they queue on the member's row."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._until: dict[object, float] = {}
        self._asking: dict[object, asyncio.Future[None]] = {}

    def refusal(self, item: RateLimitItem, key: object, now: float) -> RateLimited | None:
        """The 429 for ``key`` if its window is known to be spent at ``now``, else None."""
        until = self._until.get(key)
        if until is None:
            return None
        if now > until:
            del self._until[key]
            return None
        return refusal(item, until - item.get_expiry(), now)

    def remember(self, key: object, oldest: float | None, item: RateLimitItem, now: float) -> None:
        """The store refused ``key`` at ``now``; its oldest stamp is ``oldest`` (None: unknown,
        the whole window from now). Never longer than a window from now: a stamp from a clock
        ahead of ours must not shut the member out here for longer."""
        if len(self._until) >= self.size:
            del self._until[next(iter(self._until))]
        expiry = item.get_expiry()
        self._until[key] = now + expiry if oldest is None else min(oldest, now) + expiry

    def turn(self, key: object) -> _Turn:
        """``async with windows.turn(key)``: wait until no other request of ``key`` in this
        process is asking the store, then ask."""
        return _Turn(self._asking, key)


class _Turn:
    """``SpentWindows.turn`` (a class rather than a generator: it is on the click's hot path)."""

    __slots__ = ("_asking", "_done", "_key")

    def __init__(self, asking: dict[object, asyncio.Future[None]], key: object) -> None:
        self._asking, self._key = asking, key

    async def __aenter__(self) -> None:
        while (asking := self._asking.get(self._key)) is not None:
            await asyncio.shield(asking)  # a waiter cancelled must not wake the others
        self._done = self._asking[self._key] = asyncio.get_running_loop().create_future()

    async def __aexit__(self, *exc: object) -> None:
        del self._asking[self._key]
        self._done.set_result(None)


class Check(NamedTuple):
    """One limit of a request: its name, its ``limits`` string, whose budget it counts."""

    name: str
    limit: str
    identifiers: tuple[object, ...]


@functools.lru_cache(maxsize=64)
def limit_item(limit: str) -> RateLimitItem:
    """The parsed ``limits`` string (parsed once per string)."""
    return parse(limit)


def refusal(item: RateLimitItem, oldest: float | None, now: float) -> RateLimited:
    """The 429 of a spent moving window whose oldest stamp is ``oldest`` (epoch seconds; None
    when unknown): the wait until that stamp leaves the window, at least 1 s and at most the
    window (stamps can come back slightly rounded)."""
    expiry = item.get_expiry()
    wait = expiry if oldest is None else min(expiry, max(1, math.ceil(oldest + expiry - now)))
    return RateLimited("Too many requests, try again later", retry_after=wait, limit=item.amount,
                       reset=wait)


class Limiter:
    def __init__(self, storage: RedisStorage, prefix: str, timeout: float = TIMEOUT) -> None:
        self.storage = storage
        self.prefix = prefix
        self.timeout = timeout
        self._client: Any = storage.bridge.storage  # type: ignore[attr-defined]
        self._script = self._client.register_script(_HIT)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiter:
        prefix = f"{settings.redis_prefix}:ratelimit"
        # No socket timeout (redis-py's default is 5 s per read and per write): each call is
        # bounded as a whole instead (``TIMEOUT``).
        timeouts: dict[str, Any] = {"socket_connect_timeout": TIMEOUT, "socket_timeout": None}
        storage = RedisStorage(
            "async+" + settings.redis_url, implementation="redispy", key_prefix=prefix, **timeouts
        )
        return cls(storage, prefix)

    async def close(self) -> None:
        await self._client.aclose()

    async def hit(self, name: str, limit: str, *identifiers: object) -> None:
        """Count one request of ``name`` for ``identifiers``; raise ``RateLimited`` when spent."""
        await self.hit_all(Check(name, limit, identifiers))

    async def hit_all(self, *checks: Check) -> None:
        """Count one request against each check in order (one round trip); raise
        ``RateLimited`` for the first that is spent, leaving the later ones uncounted."""
        items = [limit_item(c.limit) for c in checks]
        keys = [self._key(item, c) for item, c in zip(items, checks, strict=True)]
        args: list[object] = [time.time()]
        for item in items:
            args += (item.amount, item.get_expiry())
        try:
            async with asyncio.timeout(self.timeout):
                spent = await self._script(keys=keys, args=args)
        except (redis.RedisError, OSError):  # OSError includes TimeoutError
            log.warning("rate limiter unavailable; request allowed",
                        extra={"limit": ",".join(c.name for c in checks)})
            return
        if not spent:
            return
        raise refusal(items[int(spent[0]) - 1], float(spent[1]), time.time())

    async def clear(self, name: str, limit: str, *identifiers: object) -> None:
        async with asyncio.timeout(self.timeout):
            await self._client.delete(self._key(limit_item(limit), Check(name, limit, identifiers)))

    def _key(self, item: RateLimitItem, check: Check) -> str:
        # The ``limits`` library's key for the same limit (``RateLimitItem.key_for``).
        return f"{self.prefix}:{item.key_for(check.name, *map(str, check.identifiers))}"
