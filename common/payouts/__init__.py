"""Paying users out: the provider interface, the sandbox provider, the circuit breaker."""

from __future__ import annotations

import redis
from sqlalchemy import Engine

from common.breakers import REGISTERED
from common.config import Settings
from common.payouts.base import PayoutProvider, PayoutResult, ProviderError, ProviderTimeout
from common.payouts.breaker import BreakerOpen, CircuitBreaker
from common.payouts.sandbox import SandboxProvider

BREAKER_NAME = "payout_provider"
# Registered at import so that /health lists it even before a worker first trips it.
REGISTERED.add(BREAKER_NAME)


def make_provider(settings: Settings, engine: Engine, client: redis.Redis) -> PayoutProvider:
    """The configured provider (``PAYOUT_PROVIDER``); real ones plug in here."""
    return SandboxProvider(settings, engine, client)


def payout_key(payment_id: int) -> str:
    """The idempotency key the provider sees for a payment."""
    return f"payment:{payment_id}"


__all__ = [
    "BREAKER_NAME", "BreakerOpen", "CircuitBreaker", "PayoutProvider", "PayoutResult",
    "ProviderError", "ProviderTimeout", "make_provider", "payout_key",
]
