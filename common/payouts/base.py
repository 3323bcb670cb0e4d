"""The payout-provider interface: every provider is called with our idempotency key
(``payment:<id>``), so a replay after a crash or a timeout returns the first result."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol


class ProviderError(Exception):
    """Transient: the call may or may not have happened; ask again with the same key."""


class ProviderTimeout(ProviderError):
    """No answer in time: the provider may have paid (ask again, it is idempotent)."""


@dataclass(frozen=True, slots=True)
class PayoutResult:
    status: Literal["paid", "declined", "voided"]
    reference: str
    reason: str | None = None


class PayoutProvider(Protocol):
    name: str

    def pay(self, *, key: str, amount: Decimal, destination: str, method: str) -> PayoutResult:
        """Pay once per ``key``; a repeated key returns the first result without paying again."""
        ...

    def void(self, *, key: str) -> PayoutResult | None:
        """Cancel ``key`` for good: None when it was never paid, and a later ``pay`` with it
        then answers ``voided`` without paying; otherwise the result already recorded. This is
        the only safe way to learn "never paid": a lookup could race a call still in flight."""
        ...
