"""Rate limits backed by Redis, shared by every web instance (``limits``' moving window).

``await limiter.hit("login:ip", settings.rate_limit_login, ip)`` counts one request and raises
``RateLimited`` (rendered as 429 with ``Retry-After`` and ``RateLimit-*``) once the limit is spent.
Limits are the ``limits`` strings of the settings ("10/minute", "5/10second"). The moving window
stamps entries with ``time.time()``, so tests move time with freezegun instead of sleeping.

Redis failures fail open: losing the limiter must not take sign-in down with it (ARCHITECTURE.md:
losing Redis loses nothing that matters); the failure is logged.
"""

from __future__ import annotations

import functools
import logging
import math
import time

import redis
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from common.config import Settings
from common.errors import RateLimited

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=64)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


class Limiter:
    def __init__(self, storage: RedisStorage) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiter:
        storage = RedisStorage(
            "async+" + settings.redis_url,
            implementation="redispy",
            key_prefix=f"{settings.redis_prefix}:ratelimit",
            socket_connect_timeout=2,
            socket_timeout=2,
        )
        return cls(storage)

    async def close(self) -> None:
        await self.storage.bridge.storage.aclose()  # type: ignore[attr-defined]

    async def hit(self, name: str, limit: str, *identifiers: object) -> None:
        """Count one request of ``name`` for ``identifiers``; raise ``RateLimited`` when spent."""
        item = _item(limit)
        keys = (name, *map(str, identifiers))
        try:
            if await self.strategy.hit(item, *keys):
                return
            stats = await self.strategy.get_window_stats(item, *keys)
        except (redis.RedisError, OSError):
            log.warning("rate limiter unavailable; request allowed", extra={"limit": name})
            return
        # Clamped to the window: the stored timestamps come back from Lua slightly rounded.
        wait = min(item.get_expiry(), max(1, math.ceil(stats.reset_time - time.time())))
        raise RateLimited(
            "Too many requests, try again later", retry_after=wait, limit=item.amount, reset=wait
        )

    async def clear(self, name: str, limit: str, *identifiers: object) -> None:
        await self.strategy.clear(_item(limit), name, *map(str, identifiers))
