"""Public answers kept for a fraction of a second: the offer catalogue's pages (``GET /offers``).

An entry is stamped when its read STARTS and served for ``ttl`` seconds after that (``ttl`` under
one second, ``OFFERS_CACHE_SECONDS``): a change committed at time T is in every answer from
T + ``ttl`` on, since any read that could have missed it started before T. This holds whoever made
the change (an admin, a worker, a migration) and across web instances, with no invalidation
message to lose. Requests that miss the same key while its read is running wait for that read
instead of starting their own, so a busy page costs the database one query per ``ttl`` per web
process. A failed read is not kept: the next request reads again.

Only answers that are the same for every caller belong here (the catalogue is public and the same
for everyone, signed in or not): the key is what the query asks, never who asks it. Entries are
bounded (the least recently used goes first) and the cache lives on the app, one per process.

Each entry carries an ``ETag`` (a digest of its JSON): a client that sends it back in
``If-None-Match`` gets ``304 Not Modified`` without the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cached:
    """A page's JSON fields (``"data":...,"pagination":...``) and their entity tag."""

    fields: bytes
    etag: str


def entity_tag(fields: bytes) -> str:
    return '"' + hashlib.blake2b(fields, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in wanted or etag in wanted


class PageCache:
    def __init__(self, ttl: float, size: int = 512) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[float, Cached]] = OrderedDict()
        self._reads: dict[Hashable, tuple[float, asyncio.Task[Cached]]] = {}

    async def get(self, key: Hashable, read: Callable[[], Awaitable[bytes]]) -> Cached:
        """The entry of ``key``: kept, being read, or read now (``read()`` gives its fields)."""
        if self.ttl <= 0:
            return _entry(await read())
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and now < found[0]:
            self._entries.move_to_end(key)
            return found[1]
        running = self._reads.get(key)
        # A read that started too long ago would answer with what it saw then: start afresh.
        if running is None or now >= running[0] + self.ttl:
            running = (now, asyncio.ensure_future(self._read(key, now, read)))
            self._reads[key] = running
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return await asyncio.shield(running[1])

    async def _read(self, key: Hashable, started: float,
                    read: Callable[[], Awaitable[bytes]]) -> Cached:
        try:
            entry = _entry(await read())
        finally:
            if self._reads.get(key, (None,))[0] == started:
                del self._reads[key]
        kept = self._entries.get(key)
        if kept is None or kept[0] < started + self.ttl:  # never over a later read's answer
            self._entries[key] = (started + self.ttl, entry)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry


def _entry(fields: bytes) -> Cached:
    return Cached(fields, entity_tag(fields))
