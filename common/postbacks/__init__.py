"""Offer-network callbacks: one adapter per scheme, chosen per network by configuration."""

from __future__ import annotations

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
from common.postbacks.params import bounded_params
from common.postbacks.schemes import Cpx, Generic, SuperRewards, Tapjoy, generic_signature

SCHEMES: dict[str, type[Adapter]] = {a.scheme: a for a in (Generic, Cpx, SuperRewards, Tapjoy)}


def adapter_for(config: NetworkConfig) -> Adapter | None:
    """The adapter of a configured network; None for a scheme we do not speak."""
    cls = SCHEMES.get(config.scheme)
    return cls(config) if cls else None


__all__ = [
    "SCHEMES", "Adapter", "Callback", "Outcome", "PostbackInvalid", "PostbackRefused", "Reply",
    "adapter_for", "bounded_params", "generic_signature", "source_allowed",
]
