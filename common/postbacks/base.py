"""What a network adapter does: read its parameters, check its signature, and say what reply the
network expects. The source-IP allow-list is checked by ``source_allowed`` before anything else."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal

from common.config import NetworkConfig
from common.money import parse_amount

Kind = Literal["credit", "reversal"]
# A network's callback without an offer id credits the network's offer with this external id.
WALL_OFFER = "*"
MAX_VALUE = 128


class PostbackRefused(Exception):
    """The callback is not believed (bad signature): 403, nothing stored but the log row."""

    verdict = "bad_signature"


class PostbackInvalid(Exception):
    """Signed correctly but unusable (missing or malformed parameter): 400, logged."""

    verdict = "invalid"


@dataclass(frozen=True, slots=True)
class Callback:
    """A verified callback, in our terms."""

    kind: Kind
    txn_id: str
    user_id: int
    offer_external_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Reply:
    """What the network expects back: the envelope, or its own plain-text body."""

    status: int
    text: str | None = None  # None: the JSON envelope


class Adapter:
    """One network's callback scheme. Subclasses set ``scheme`` and implement ``verify``."""

    scheme: ClassVar[str]

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config

    def verify(self, params: Mapping[str, str], *, headers: Mapping[str, str], raw_query: str) -> Callback:
        raise NotImplementedError

    def accepted(self) -> Reply:
        return Reply(200)

    def refused(self) -> Reply:
        return Reply(403)

    # Helpers for subclasses.
    def _secret(self) -> bytes:
        return self.config.secret.encode()

    @staticmethod
    def _same(expected: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(expected.lower(), given.strip().lower())

    @staticmethod
    def _required(params: Mapping[str, str], name: str) -> str:
        value = params.get(name)
        if value is None or not value.strip():
            raise PostbackInvalid(f"missing parameter {name}")
        if len(value) > MAX_VALUE:  # ids are stored in columns of this size
            raise PostbackInvalid(f"{name} longer than {MAX_VALUE} characters")
        return value.strip()

    @classmethod
    def _optional(cls, params: Mapping[str, str], name: str) -> str:
        """An optional offer id: absent means the network's wall offer."""
        return cls._required(params, name) if (params.get(name) or "").strip() else WALL_OFFER

    @classmethod
    def _user(cls, params: Mapping[str, str], name: str) -> int:
        raw = cls._required(params, name)
        if not raw.isdigit() or len(raw) > 18:
            raise PostbackInvalid(f"{name} is not a user id")
        return int(raw)

    @classmethod
    def _amount(cls, params: Mapping[str, str], name: str) -> Decimal:
        try:
            return parse_amount(cls._required(params, name))
        except ValueError:
            raise PostbackInvalid(f"{name} is not an amount") from None


def source_allowed(config: NetworkConfig, ip: str) -> bool:
    """True when the network has no allow-list, or ``ip`` is inside it."""
    if not config.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in config.allowed_ips)
