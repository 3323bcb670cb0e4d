"""The sandbox provider: behaves like a real one, with its own books in ``sandbox_payouts``.

- latency on every call (``PAYOUT_SANDBOX_LATENCY_MS``);
- idempotent by key: a replay returns the recorded result and never pays twice;
- declines (a final answer) at ``PAYOUT_SANDBOX_DECLINE_RATE`` or for a destination containing
  ``decline``;
- ``void`` cancels a key for good: its row says ``voided`` and a later ``pay`` returns that;
- transient errors before paying at ``PAYOUT_SANDBOX_ERROR_RATE`` (or destination ``flaky``, once
  per key), and timeouts AFTER paying at ``PAYOUT_SANDBOX_TIMEOUT_RATE`` (or destination
  ``timeout``, once per key): the caller must ask again to learn that it paid.
Its records commit in their own transaction, as a provider's books are not ours.
"""

from __future__ import annotations

import random
import time
import uuid
from decimal import Decimal

import redis
from sqlalchemy import Engine, text

from common.config import Settings
from common.payouts.base import PayoutResult, ProviderError, ProviderTimeout
from common.redis import key as redis_key

_RECORD = text(
    """
    INSERT INTO sandbox_payouts (idempotency_key, amount, destination, status, reference)
    VALUES (:key, :amount, :destination, :status, :reference)
    ON CONFLICT (idempotency_key) DO NOTHING
    """
)
_LOOKUP = text("SELECT status, reference FROM sandbox_payouts WHERE idempotency_key = :key")


class SandboxProvider:
    name = "sandbox"

    def __init__(self, settings: Settings, engine: Engine, client: redis.Redis) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = client
        self.random = random.Random()

    def _latency(self) -> None:
        if self.settings.payout_sandbox_latency_ms:
            time.sleep(self.settings.payout_sandbox_latency_ms / 1000 * self.random.uniform(0.5, 1.5))

    def _once(self, what: str, key: str) -> bool:
        """True the first time ``what`` happens for ``key`` (magic destinations misbehave once)."""
        return bool(self.redis.set(redis_key(self.settings, "sandbox", what, key), 1, nx=True, ex=86_400))

    def void(self, *, key: str) -> PayoutResult | None:
        self._latency()
        # The key's row is the provider's single decision point: whichever of pay and void
        # inserts it first decides, and the other reads that decision.
        with self.engine.begin() as conn:
            voided = conn.execute(_RECORD, {
                "key": key, "amount": 0, "destination": "", "status": "voided",
                "reference": f"sbx_void_{uuid.uuid4().hex[:15]}",
            }).rowcount == 1
        return None if voided else self._recorded(key)

    def pay(self, *, key: str, amount: Decimal, destination: str, method: str) -> PayoutResult:
        self._latency()
        recorded = self._recorded(key)
        if recorded is not None:
            return recorded
        s = self.settings
        if self.random.random() < s.payout_sandbox_error_rate or (
            "flaky" in destination and self._once("flaky", key)
        ):
            raise ProviderError("sandbox: service unavailable")
        declined = self.random.random() < s.payout_sandbox_decline_rate or "decline" in destination
        status = "declined" if declined else "paid"
        with self.engine.begin() as conn:
            conn.execute(_RECORD, {
                "key": key, "amount": amount, "destination": destination, "status": status,
                "reference": f"sbx_{uuid.uuid4().hex[:20]}",
            })
        result = self._recorded(key)
        assert result is not None
        if self.random.random() < s.payout_sandbox_timeout_rate or (
            "timeout" in destination and self._once("timeout", key)
        ):
            raise ProviderTimeout("sandbox: timed out after paying")
        return result

    def _recorded(self, key: str) -> PayoutResult | None:
        with self.engine.connect() as conn:
            row = conn.execute(_LOOKUP, {"key": key}).first()
        if row is None:
            return None
        reason = {"declined": "declined by the payout provider",
                  "voided": "cancelled at the payout provider"}.get(row.status)
        return PayoutResult(row.status, row.reference, reason)
