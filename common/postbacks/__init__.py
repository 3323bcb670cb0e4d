"""Offer-network callbacks: one adapter per scheme, chosen per network by configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.config import NetworkConfig
from common.postbacks.base import (
    Adapter,
    Callback,
    Outcome,
    PostbackInvalid,
    PostbackRefused,
    Reply,
    source_allowed,
)
from common.postbacks.params import REDACTED, bounded_params, redacted
from common.postbacks.schemes import Cpx, Generic, SuperRewards, Tapjoy, generic_signature

SCHEMES: dict[str, type[Adapter]] = {a.scheme: a for a in (Generic, Cpx, SuperRewards, Tapjoy)}
# Every scheme's signature parameters: the log hides them all, whatever a network's scheme is today.
SIGNATURE_PARAMS = frozenset(name for a in SCHEMES.values() for name in a.signature_params)


def adapter_for(config: NetworkConfig) -> Adapter | None:
    """The adapter of a configured network; None for a scheme we do not speak."""
    cls = SCHEMES.get(config.scheme)
    return cls(config) if cls else None


def shown_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A logged callback's parameters without its signature (the admin search)."""
    return redacted(params, SIGNATURE_PARAMS)


__all__ = [
    "REDACTED", "SCHEMES", "SIGNATURE_PARAMS", "Adapter", "Callback", "Outcome", "PostbackInvalid",
    "PostbackRefused", "Reply", "adapter_for", "bounded_params", "generic_signature", "redacted",
    "shown_params", "source_allowed",
]
