"""Redis clients and the names of the keys and channels every process agrees on."""

from __future__ import annotations

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from common.config import Settings

# A command that meets a dropped connection (a pooled connection left over from before a Redis
# restart) runs once more on a new one, at once; a timeout is not retried (it would double the
# wait). While Redis is down both attempts are refused at once.
_RETRY_ONCE = (redis.ConnectionError,)


def make_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=_RETRY_ONCE),
    )


def make_async_redis(settings: Settings) -> aredis.Redis:
    return aredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30,
        retry=AsyncRetry(NoBackoff(), 1, supported_errors=_RETRY_ONCE),
    )


def events_channel(settings: Settings) -> str:
    """The pub/sub channel from workers (and web writes) to every web instance."""
    return f"{settings.redis_prefix}:events"


def key(settings: Settings, *parts: object) -> str:
    """A namespaced Redis key: ``<prefix>:<part>:<part>``."""
    return ":".join((settings.redis_prefix, *map(str, parts)))


def text(value: bytes | str | None, default: str = "") -> str:
    """A value read from a client made above (bytes, since they do not decode) as text."""
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else value
