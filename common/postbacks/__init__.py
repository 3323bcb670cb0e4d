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
# Every scheme's known fields that carry no secret (ids, amounts, status, the click): always shown.
SHOWN_PARAMS = frozenset(name for a in SCHEMES.values() for name in a.shown_fields) - SIGNATURE_PARAMS


def adapter_for(config: NetworkConfig) -> Adapter | None:
    """The adapter of a configured network; None for a scheme we do not speak."""
    cls = SCHEMES.get(config.scheme)
    return cls(config) if cls else None


def shown_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A logged callback's parameters as the admin search shows them: every scheme's known
    fields, and any other parameter whose name and value look like no secret; the rest, and
    every signature, redacted (``redacted``)."""
    return redacted(params, shown=SHOWN_PARAMS, hidden=SIGNATURE_PARAMS)


__all__ = [
    "REDACTED", "SCHEMES", "SHOWN_PARAMS", "SIGNATURE_PARAMS", "Adapter", "Callback", "Outcome", "PostbackInvalid",
    "PostbackRefused", "Reply", "adapter_for", "bounded_params", "generic_signature", "redacted",
    "shown_params", "source_allowed",
]
