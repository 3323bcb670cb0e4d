"""A circuit breaker whose state lives in Redis, shared by every worker and shown by /health.

closed: calls pass; ``THRESHOLD`` failures within ``WINDOW`` seconds open it. open: calls fail
fast with ``BreakerOpen`` for ``COOLDOWN`` seconds. half_open: one trial call passes; success
closes it, failure opens it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import redis

from common.breakers import REGISTERED, state_key
from common.config import Settings
from common.redis import key
from common.redis import text as redis_text

T = TypeVar("T")
log = logging.getLogger(__name__)
THRESHOLD = 5
WINDOW = 60
COOLDOWN = 30


class BreakerOpen(Exception):
    """The breaker is open: the call was not made."""


class CircuitBreaker:
    def __init__(self, name: str, settings: Settings, client: redis.Redis) -> None:
        REGISTERED.add(name)
        self.name = name
        self.redis = client
        self.state = state_key(settings, name)
        self.failures = key(settings, "breaker", name, "failures")
        self.open_until = key(settings, "breaker", name, "cooldown")
        self.trial = key(settings, "breaker", name, "trial")

    def call(self, fn: Callable[[], T], *, failures: tuple[type[BaseException], ...]) -> T:
        """Run ``fn`` unless open; exceptions in ``failures`` count against the provider."""
        self._admit()
        try:
            result = fn()
        except failures:
            self._after_call(self._failed)
            raise
        self._after_call(self._succeeded)
        return result

    def _after_call(self, bookkeeping: Callable[[], None]) -> None:
        """The breaker's bookkeeping once the call was made: best effort. Redis going away now
        must not hide what the call answered: a failure would not count against the caller's
        attempts, and a success would be made again (``_admit`` before the call still raises)."""
        try:
            bookkeeping()
        except redis.RedisError:  # away, read-only after a failover, out of memory
            log.warning("breaker state not recorded: Redis unavailable", extra={"breaker": self.name})

    def _admit(self) -> None:
        state = redis_text(self.redis.get(self.state), "closed")
        if state == "closed":
            return
        if self.redis.exists(self.open_until):
            raise BreakerOpen(f"{self.name} circuit open")
        # Cooldown over: exactly one caller gets the trial; the others still fail fast.
        if not self.redis.set(self.trial, 1, nx=True, ex=COOLDOWN):
            raise BreakerOpen(f"{self.name} circuit half open, trial in progress")
        self.redis.set(self.state, "half_open")

    def _failed(self) -> None:
        with self.redis.pipeline() as pipe:
            pipe.incr(self.failures)
            pipe.expire(self.failures, WINDOW, nx=True)
            count, _ = pipe.execute()
        state = redis_text(self.redis.get(self.state), "closed")
        if count >= THRESHOLD or state == "half_open":
            with self.redis.pipeline() as pipe:
                pipe.set(self.state, "open")
                pipe.set(self.open_until, 1, ex=COOLDOWN)
                pipe.delete(self.failures, self.trial)
                pipe.execute()

    def _succeeded(self) -> None:
        if redis_text(self.redis.get(self.state), "closed") != "closed":
            self.redis.delete(self.state, self.trial, self.failures)
