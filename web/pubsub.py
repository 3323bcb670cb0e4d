"""The web process's one Redis pub/sub connection, routing each message by channel to whoever
follows that channel (the realtime hub, the account gate).

Consumers ``follow`` a channel before the subscriber starts. On each (re)connection it subscribes
every followed channel once; when Redis confirms a channel, that channel's consumers hear
``on_subscribed`` (a consumer that keeps state loads it then: subscribed first, loaded second, so
no change falls between the two), then every message on it (``on_message``); when the connection
is lost, or the subscriber stops, every consumer hears ``on_lost``. The callbacks are synchronous
and quick: a consumer with I/O to do hands it to its own task, so that no consumer delays the
messages of another, and one that raises is logged and skipped.

The connection is re-made with capped exponential backoff and jitter; ``reconnects`` counts the
losses (``savebucks_ws_subscriber_reconnects``), and ``subscribed`` is set while every followed
channel is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import redis
import redis.asyncio as aredis
from aiohttp import web

from web.keys import SETTINGS, SUBSCRIBER

log = logging.getLogger(__name__)
BACKOFF_START, BACKOFF_MAX = 0.1, 5.0
STOP_TIMEOUT = 2.0
# How long one wait for a message lasts: the loop notices ``stop`` at least this often.
POLL_SECONDS = 1.0


class Consumer(Protocol):
    def on_subscribed(self) -> None: ...
    def on_message(self, data: bytes) -> None: ...
    def on_lost(self) -> None: ...


class Subscriber:
    def __init__(self, client: aredis.Redis) -> None:
        self.client = client
        self.routes: dict[str, list[Consumer]] = {}
        self.subscribed = asyncio.Event()
        self.reconnects = 0
        self._confirmed: set[str] = set()
        self._backoff = BACKOFF_START
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def follow(self, channel: str, consumer: Consumer) -> None:
        """Route ``channel``'s messages to ``consumer`` too. A new channel must be followed
        before ``start`` (the connection subscribes its channels when it is made)."""
        if self.running and channel not in self.routes:
            raise RuntimeError(f"follow {channel!r} before the subscriber starts")
        self.routes.setdefault(channel, []).append(consumer)
        if channel in self._confirmed:
            _call(consumer.on_subscribed)

    def unfollow(self, channel: str, consumer: Consumer) -> None:
        consumers = self.routes.get(channel, [])
        if consumer in consumers:
            consumers.remove(consumer)

    @property
    def running(self) -> bool:
        """True while the subscriber task is alive (it ends on ``stop``)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.routes:
            raise RuntimeError("nothing follows a channel")
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-subscriber")

    async def stop(self) -> None:
        """End the subscriber, within ``STOP_TIMEOUT``: redis-py's ``get_message`` can swallow a
        cancellation that lands as its read times out, so cancel again until the task is done."""
        self._stopping = True
        task, loop = self._task, asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT
        while task is not None and not task.done() and loop.time() < deadline:
            task.cancel()
            await asyncio.wait({task}, timeout=0.2)
        self._lose()  # already done by the task as it ended, unless it is stuck

    async def close(self) -> None:
        with contextlib.suppress(redis.RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self.client.aclose(), STOP_TIMEOUT)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._listen()
            except (redis.RedisError, OSError) as exc:
                # redis-py may turn our cancellation into a connection error: do not retry then.
                if self._stopping:
                    return
                self.reconnects += 1
                log.warning("Redis subscriber lost its connection; reconnecting",
                            extra={"error": str(exc), "in_seconds": round(self._backoff, 2)})
                await asyncio.sleep(self._backoff * random.uniform(0.5, 1.0))
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    async def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(*self.routes)
            while not self._stopping:
                message = await pubsub.get_message(timeout=POLL_SECONDS)
                if message is None:
                    continue
                channel = _text(message["channel"])
                if message["type"] == "subscribe":
                    self._confirm(channel)
                elif message["type"] == "message":
                    for consumer in tuple(self.routes.get(channel, ())):
                        _call(consumer.on_message, message["data"])
                    # Let the consumers' tasks (the socket writers) run between messages, so one
                    # burst cannot fill the queues of clients that do keep up.
                    await asyncio.sleep(0)
        finally:
            self._lose()
            with contextlib.suppress(redis.RedisError, OSError, TimeoutError):
                await asyncio.wait_for(pubsub.aclose(), STOP_TIMEOUT)

    def _confirm(self, channel: str) -> None:
        self._confirmed.add(channel)
        self._backoff = BACKOFF_START
        if self._confirmed >= set(self.routes):
            self.subscribed.set()
        for consumer in tuple(self.routes.get(channel, ())):
            _call(consumer.on_subscribed)

    def _lose(self) -> None:
        self.subscribed.clear()
        self._confirmed.clear()
        for consumers in self.routes.values():
            for consumer in tuple(consumers):
                _call(consumer.on_lost)


def _call(callback: Callable[..., None], *args: object) -> None:
    try:
        callback(*args)
    except Exception:  # one consumer's failure must not stop the others, nor the next message
        log.exception("a pub/sub consumer failed")


def _text(channel: bytes | str) -> str:
    return channel.decode() if isinstance(channel, bytes) else channel


async def subscriber_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context, before its consumers': the subscriber they follow (not started yet)."""
    settings = app[SETTINGS]
    client = aredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        health_check_interval=15,
        # Named so that operators (and the tests) can tell this process's subscriber apart; the
        # name predates the account gate sharing the connection.
        client_name=f"{settings.redis_prefix}:ws-hub:{os.getpid()}:{id(app):x}",
    )
    app[SUBSCRIBER] = Subscriber(client)
    yield
    await app[SUBSCRIBER].close()


async def running_subscriber(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context, after every consumer's: runs the subscriber, and stops it first."""
    app[SUBSCRIBER].start()
    yield
    await app[SUBSCRIBER].stop()
