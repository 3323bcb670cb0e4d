"""The Celery broker as the web sees it: reachable or not (``GET /health``), and how many tasks
wait in each queue (``GET /metrics``), for a Redis broker or a RabbitMQ one.

- Redis: PING and the queues' list lengths on an asyncio client (the app's own when the broker is
  ``REDIS_URL``).
- RabbitMQ: kombu (py-amqp) is blocking, so each read runs in a thread on a connection of its own,
  bounded by ``connect_timeout``; the callers coalesce them (one read per period per instance,
  ``web.metrics.CachedRead``) and give up waiting after their own time limit.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import redis.asyncio as aredis
from amqp.exceptions import NotFound
from kombu import Connection

from common.config import Settings
from common.taskqueue import QUEUES

# kombu's Redis transport keeps a queue's prioritised messages in sibling lists, and the tasks
# workers have reserved but not acknowledged in one hash.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
UNACKED = "unacked"
CONNECT_TIMEOUT = 2


class Broker(Protocol):
    async def ping(self) -> None: ...

    async def queue_depths(self) -> dict[str, int]:
        """Messages waiting per queue, plus ``UNACKED`` where the broker tells it."""
        ...

    async def close(self) -> None: ...


class RedisBroker:
    def __init__(self, client: aredis.Redis, *, owned: bool) -> None:
        self.client = client
        self.owned = owned  # False: the app's own client, closed by the app

    async def ping(self) -> None:
        await self.client.ping()

    async def queue_depths(self) -> dict[str, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(queue)
                for step in _PRIORITY_STEPS:
                    pipe.llen(f"{queue}{_PRIORITY_SEPARATOR}{step}")
            pipe.hlen(UNACKED)
            sizes = await pipe.execute()
        per_queue = 1 + len(_PRIORITY_STEPS)
        depths = {q: sum(sizes[i * per_queue:(i + 1) * per_queue]) for i, q in enumerate(QUEUES)}
        depths[UNACKED] = sizes[-1]
        return depths

    async def close(self) -> None:
        if self.owned:
            await self.client.aclose()


class AmqpBroker:
    def __init__(self, url: str, timeout: int = CONNECT_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout

    def _connection(self) -> Connection:
        return Connection(self.url, connect_timeout=self.timeout,
                          transport_options={"max_retries": 0})

    def _ping(self) -> None:
        with self._connection() as conn:
            conn.ensure_connection(max_retries=1, timeout=self.timeout)

    def _depths(self) -> dict[str, int]:
        depths: dict[str, int] = {}
        with self._connection() as conn:
            conn.ensure_connection(max_retries=1, timeout=self.timeout)
            channel: Any = conn.channel()  # py-amqp's Channel (kombu types it abstractly)
            for queue in QUEUES:
                try:
                    depths[queue] = channel.queue_declare(queue, passive=True).message_count
                except NotFound:  # declared by the first worker; none yet means none waiting
                    depths[queue] = 0
                    channel = conn.channel()  # the broker closed the channel that asked
        # RabbitMQ tells unacknowledged counts through its management API only.
        return depths

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    async def queue_depths(self) -> dict[str, int]:
        return await asyncio.to_thread(self._depths)

    async def close(self) -> None:
        pass


def make_broker(settings: Settings, redis: aredis.Redis) -> Broker:
    if settings.broker_is_amqp:
        return AmqpBroker(settings.broker_url)
    if settings.broker_url == settings.redis_url:
        return RedisBroker(redis, owned=False)
    client = aredis.Redis.from_url(settings.broker_url, socket_connect_timeout=CONNECT_TIMEOUT)
    return RedisBroker(client, owned=True)
