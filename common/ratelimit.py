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

Requests share the round trip (``_Batch``): one call of the script is in flight at a time, and
the hits of every request that asks meanwhile go together in the next call (with none in flight,
the requests of one turn of the event loop go together). Under load many requests ask while a
call is out, and one write, one read and one script run for all of them cost far less than one
each; with one request at a time, each still has its own call at once. Nothing about the limits
changes: the script takes the requests in the order they asked, each one's limits in order and
with its own time, exactly as that many calls one after the other would, and the whole call is
atomic in Redis as each request's was; other instances' calls run before or after it.

Redis failures fail open: losing the limiter must not take sign-in down with it (ARCHITECTURE.md:
losing Redis loses nothing that matters); the failure is logged. A Redis that stops answering, or
answers too slowly for the queue, fails open too: each request waits at most ``TIMEOUT`` for its
answer, its place in the queue included, then is let through unchecked (counted only if its call
had started: one that had not is never sent). Each call (connect, write, read) is bounded, until
the last of its requests gives up, by one ``asyncio.timeout_at`` rather than by redis-py's socket
timeout, whose write timeout runs every command's write in a task of its own
(``asyncio.wait_for``) and an extra turn of the event loop; a call cut short drops its connection
(redis-py never reuses one a command was interrupted on) and fails the requests queued behind it
at once, as an unreachable Redis does. An error answer (Redis up, but refusing the script) fails
open only the requests of its own call.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
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
# Seconds a request waits for its count, its place in the queue and its call (the connection
# included) together; past it the request is let through.
TIMEOUT = 2.0
# Requests in one call at most: a call's script holds Redis (every instance's limits) while it
# runs, a few microseconds per request; a burst larger than this goes in several calls.
BATCH = 500

# Requests one after the other. KEYS: each request's moving windows, one per limit, in order;
# ARGV per request: its number of limits, its time, then (limit, window seconds) per limit. A
# window holds the stamps of the last ``limit`` hits, newest first; a limit is spent when the
# oldest of them is still inside the window. Returns, per request in order, 0 when every limit
# took the hit, else {the spent limit's position, its oldest stamp} (when it frees up a place);
# the limits after a spent one are not counted.
_HIT = """
local results = {}
local k, a = 0, 1
while a <= #ARGV do
    local n, stamp = tonumber(ARGV[a]), ARGV[a + 1]
    local now = tonumber(stamp)
    local result = 0
    for i = 1, n do
        local key, limit, expiry = KEYS[k + i], tonumber(ARGV[a + 2 * i]), tonumber(ARGV[a + 2 * i + 1])
        if result == 0 then
            local oldest = stamp
            if limit >= 1 then
                oldest = redis.call('lindex', key, limit - 1)
            end
            if oldest and tonumber(oldest) >= now - expiry then
                result = {i, oldest}
            else
                redis.call('lpush', key, stamp)
                redis.call('ltrim', key, 0, limit - 1)
                redis.call('expire', key, expiry)
            end
        end
    end
    results[#results + 1] = result
    k, a = k + n, a + 2 + 2 * n
end
return results
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


class _Batch:
    """The requests that go to Redis together, for one call of ``_HIT``: each request's keys,
    its ``_HIT`` arguments and the future of its answer."""

    __slots__ = ("loop", "requests")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.requests: list[tuple[list[str], list[object], asyncio.Future[Any], float]] = []

    def add(self, keys: list[str], args: list[object], until: float) -> asyncio.Future[Any]:
        """Join a request that waits for its answer until ``until`` (the loop's clock); the
        future is its answer."""
        waiter = self.loop.create_future()
        self.requests.append((keys, args, waiter, until))
        return waiter

    def full(self) -> bool:
        return len(self.requests) >= BATCH

    def call(self) -> tuple[list[str], list[object], list[asyncio.Future[Any]], float]:
        """The call's keys and arguments, of the requests still waiting for their answer (one
        that gave up, its wait bound passed or cancelled, is neither sent nor counted), their
        futures, and when the last of them gives up."""
        keys: list[str] = []
        args: list[object] = []
        waiters = []
        last = 0.0
        for request_keys, request_args, waiter, until in self.requests:
            if not waiter.done():
                keys += request_keys
                args += request_args
                waiters.append(waiter)
                last = max(last, until)
        return keys, args, waiters, last

    def fail(self, exc: BaseException) -> None:
        for _, _, waiter, _ in self.requests:
            if not waiter.done():
                waiter.set_exception(exc)


def _abandoned() -> ConnectionError:
    """The failure of a call cut short by the limiter's shutdown (a fresh one each time: a
    shared exception would collect the traceback of every request it was raised in)."""
    return ConnectionError("rate limiter call abandoned")


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
        # The batches waiting for their call, and the task that sends them one at a time, of
        # the event loop the limiter is used on.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: collections.deque[_Batch] = collections.deque()
        self._sender: asyncio.Task[None] | None = None

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
        """Count one request against each check in order (one round trip, shared with the
        requests that ask at the same time); raise ``RateLimited`` for the first that is spent,
        leaving the later ones uncounted. The request waits at most ``timeout`` for its answer,
        whatever is queued before it, then is let through (fails open)."""
        if not checks:
            return
        items = [limit_item(c.limit) for c in checks]
        keys = [self._key(item, c) for item, c in zip(items, checks, strict=True)]
        args: list[object] = [len(checks), time.time()]
        for item in items:
            args += (item.amount, item.get_expiry())
        try:
            batch = self._batch()
            until = batch.loop.time() + self.timeout
            async with asyncio.timeout_at(until):
                spent = await batch.add(keys, args, until)
        except (redis.RedisError, OSError) as exc:  # OSError includes TimeoutError
            log.warning("rate limiter unavailable; request allowed",
                        extra={"limit": ",".join(c.name for c in checks),
                               "error": type(exc).__name__})
            return
        if not spent:
            return
        raise refusal(items[int(spent[0]) - 1], float(spent[1]), time.time())

    def _batch(self) -> _Batch:
        """The batch a request joins: the last one waiting, unless it is full. The first
        waiting batch is sent once the call in flight ends (with none in flight, at the next
        turn of the loop, once every request of this one has joined)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one is alive
            self._loop, self._waiting, self._sender = loop, collections.deque(), None
        if not self._waiting or self._waiting[-1].full():
            self._waiting.append(_Batch(loop))
        if self._sender is None or self._sender.done():  # done: its callback is yet to run
            # A context of its own: not the trace id of the request that happened to start it.
            self._sender = sender = loop.create_task(self._send(), context=contextvars.Context())
            sender.add_done_callback(self._sent, context=contextvars.Context())
        return self._waiting[-1]

    async def _send(self) -> None:
        """Call the script for each waiting batch in turn, until none is left. Each call is
        bounded as a whole, until the last of its requests gives up (a call cut short drops its
        connection: redis-py never reuses one a command was interrupted on). A request gets its
        answer, or the failure, which it takes as open. A Redis that cannot be reached or did not answer in time fails
        the batches queued behind the call too; an error answer fails only its own batch."""
        while self._waiting:
            batch = self._waiting.popleft()
            try:
                keys, args, waiters, until = batch.call()
                if not waiters:
                    continue
                # Nobody waits past ``until``: a call still out then is dropped, and the queue
                # behind it fails open at once rather than each request in turn.
                async with asyncio.timeout_at(until):
                    answers = await self._script(keys=keys, args=args)
                for waiter, answer in zip(waiters, answers, strict=True):
                    if not waiter.done():  # it gave up meanwhile: counted, and let through
                        waiter.set_result(answer)
            except asyncio.CancelledError:
                batch.fail(_abandoned())
                raise
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                batch.fail(exc)
                self._fail_waiting(exc)
            except Exception as exc:  # noqa: BLE001  an error answer, or a bug: this batch's
                batch.fail(exc)

    def _sent(self, sender: asyncio.Task[None]) -> None:
        """The sender ended. Cancelled (shut down, even before it started) or failed: no request
        may be left waiting for it; each goes on, as with Redis down."""
        if self._sender is not sender:
            return
        self._sender = None
        if sender.cancelled():
            self._fail_waiting(_abandoned())
        elif (exc := sender.exception()) is not None:  # a bug outside a call: said, not hidden
            log.error("rate limiter sender failed", exc_info=exc)
            self._fail_waiting(exc)

    def _fail_waiting(self, exc: BaseException) -> None:
        while self._waiting:
            self._waiting.popleft().fail(exc)

    async def clear(self, name: str, limit: str, *identifiers: object) -> None:
        async with asyncio.timeout(self.timeout):
            await self._client.delete(self._key(limit_item(limit), Check(name, limit, identifiers)))

    def _key(self, item: RateLimitItem, check: Check) -> str:
        # The ``limits`` library's key for the same limit (``RateLimitItem.key_for``).
        return f"{self.prefix}:{item.key_for(check.name, *map(str, check.identifiers))}"
