"""Redis clients and the names of the keys and channels every process agrees on."""

from __future__ import annotations

import redis
import redis.asyncio as aredis

from common.config import Settings


def make_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def make_async_redis(settings: Settings) -> aredis.Redis:
    return aredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
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
