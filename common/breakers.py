"""Circuit breakers around external APIs, with their state shared through Redis.

Workers trip and close them; every web instance reads the states for ``/health``. The names of
the breakers are registered by the modules that own them (the payout provider, ...).
"""

from __future__ import annotations

import redis.asyncio as aredis

from common.config import Settings
from common.redis import key
from common.redis import text as redis_text

REGISTERED: set[str] = set()


def state_key(settings: Settings, name: str) -> str:
    return key(settings, "breaker", name, "state")


async def breaker_states(client: aredis.Redis, settings: Settings) -> dict[str, str]:
    """``{name: "closed" | "open" | "half_open"}`` for every registered breaker."""
    names = sorted(REGISTERED)
    if not names:
        return {}
    values = await client.mget([state_key(settings, n) for n in names])
    return {n: redis_text(v, "closed") for n, v in zip(names, values, strict=True)}
