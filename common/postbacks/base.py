"""What a network adapter does: read its parameters, check its signature, and say what reply the
network expects for each outcome. The source-IP allow-list is checked by ``source_allowed`` before
anything else."""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal

from common.config import NetworkConfig
from common.money import parse_amount

Kind = Literal["credit", "reversal"]
# What became of a callback, as far as the network's reply is concerned (docs/money.md "Replies").
Outcome = Literal[
    "accepted",       # credited, reversed, or a repeat acknowledged again
    "bad_signature",  # also a source IP outside the allow-list: not believed
    "unknown_user", "unknown_offer",
    "refused",        # another rule of ours refused a verified callback
    "malformed",      # signed, but a parameter is missing or unusable, or the body unreadable
    "bad_amount",     # signed, but the amount is not one we accept (docs/money.md "Rounding")
    "rate_limited",
]
# A network's callback without an offer id credits the network's offer with this external id.
WALL_OFFER = "*"
_USER_ID = re.compile(r"[1-9][0-9]{0,17}")
MAX_ID_LENGTH = 128  # ids are stored in columns of this size


class PostbackRefused(Exception):
    """The callback is not believed (bad signature): 403, nothing stored but the log row."""

    verdict = "bad_signature"


class PostbackInvalid(Exception):
    """Signed correctly but unusable (missing or malformed parameter, or an amount out of bounds):
    logged with verdict ``invalid``, answered as the adapter answers ``outcome``."""

    verdict = "invalid"

    def __init__(self, message: str, outcome: Outcome = "malformed") -> None:
        super().__init__(message)
        self.outcome: Outcome = outcome


@dataclass(frozen=True, slots=True)
class Callback:
    """A verified callback, in our terms."""

    kind: Kind
    txn_id: str
    user_id: int
    offer_external_id: str
    amount: Decimal
    # The click the network names in its sub-id parameter (``Adapter.click_param``), as sent.
    click_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the network expects back: the envelope, or its own plain-text body."""

    status: int
    text: str | None = None  # None: the JSON envelope


class Adapter:
    """One network's callback scheme. Subclasses set ``scheme`` and implement ``verify``, and
    override the replies their network reads differently (NETWORKS.md)."""

    scheme: ClassVar[str]
    # The parameter that carries our click id back (the network's sub-id, NETWORKS.md).
    click_param: ClassVar[str] = "click_id"
    # Whether the scheme's signature covers ``click_param``. An unsigned click id would let anyone
    # holding one signed URL choose which click (and so which claim rule) decides the credit, so
    # it is believed only from the network's own addresses (POSTBACK_ALLOWED_IPS_<NETWORK>) and
    # ignored otherwise (the credit is then judged as naming no click).
    click_signed: ClassVar[bool] = True
    # A scheme whose signature leaves the user, amount or status unsigned is believed only from
    # its network's addresses: configuration refuses it without POSTBACK_ALLOWED_IPS_<NETWORK>.
    requires_allowed_ips: ClassVar[bool] = False
    # Ours (docs/money.md "Postbacks"): 4xx that a retry can cure (a user or offer created later, a limit)
    # are ones networks retry; the others say what is wrong.
    statuses: ClassVar[Mapping[Outcome, int]] = {
        "accepted": 200, "bad_signature": 403, "unknown_user": 422, "unknown_offer": 422,
        "refused": 422, "malformed": 400, "bad_amount": 422, "rate_limited": 429,
    }
    # The plain-text bodies of a network that reads a body rather than the envelope.
    success_text: ClassVar[str | None] = None
    failure_text: ClassVar[str | None] = None
    # The network's names for the transaction id, the user id and the signature: the log keeps
    # the ids in columns of their own (support searches them) and never shows the signature.
    txn_param: ClassVar[str]
    user_param: ClassVar[str]
    signature_params: ClassVar[tuple[str, ...]]
    # The parameters the scheme reads that carry no secret: the admin log shows them as sent; any
    # other parameter is shown only when it looks like no secret (``shown_params``).
    shown_fields: ClassVar[tuple[str, ...]]

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config

    def verify(self, params: Mapping[str, str], *, headers: Mapping[str, str], raw_query: str) -> Callback:
        raise NotImplementedError

    def reply(self, outcome: Outcome) -> Reply:
        """What the network expects back for ``outcome``."""
        status = self.statuses[outcome]
        return Reply(status, self.success_text if status == 200 else self.failure_text)

    def log_keys(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The transaction and user ids a callback names, as the log keeps them whether or not it
        is believed: an id of a usable length, a user id in its canonical form; else None."""
        txn = (params.get(self.txn_param) or "").strip()
        user = (params.get(self.user_param) or "").strip()
        return {"txn_id": txn if 0 < len(txn) <= MAX_ID_LENGTH else None,
                "user_id": int(user) if _USER_ID.fullmatch(user) else None}

    # Helpers for subclasses.
    def _secret(self) -> bytes:
        return self.config.secret.encode()

    @staticmethod
    def _same(expected: str, given: str | None) -> bool:
        # Bytes: compare_digest raises TypeError for a str holding a non-ASCII character.
        return given is not None and hmac.compare_digest(
            expected.lower().encode(), given.strip().lower().encode())

    @staticmethod
    def _required(params: Mapping[str, str], name: str) -> str:
        value = params.get(name)
        if value is None or not value.strip():
            raise PostbackInvalid(f"missing parameter {name}")
        if len(value) > MAX_ID_LENGTH:
            raise PostbackInvalid(f"{name} longer than {MAX_ID_LENGTH} characters")
        return value.strip()

    @classmethod
    def _optional(cls, params: Mapping[str, str], name: str) -> str:
        """An optional offer id: absent means the network's wall offer."""
        return cls._required(params, name) if (params.get(name) or "").strip() else WALL_OFFER

    def _click(self, params: Mapping[str, str]) -> str | None:
        """The click id the callback names, or None; its shape and owner are checked by the
        credit rule (a malformed one is a ``click_mismatch``, not a malformed callback)."""
        if not self.click_signed and not self.config.allowed_ips:
            return None
        return (params.get(self.click_param) or "").strip() or None

    @classmethod
    def _user(cls, params: Mapping[str, str], name: str) -> int:
        raw = cls._required(params, name)
        if not _USER_ID.fullmatch(raw):  # ASCII digits only: int() also reads "²" or "١٢"
            raise PostbackInvalid(f"{name} is not a user id")
        return int(raw)

    @classmethod
    def _amount(cls, params: Mapping[str, str], name: str) -> Decimal:
        try:
            return parse_amount(cls._required(params, name))
        except ValueError:
            raise PostbackInvalid(f"{name} is not an amount", "bad_amount") from None


def source_allowed(config: NetworkConfig, ip: str) -> bool:
    """True when the network has no allow-list, or ``ip`` is inside it."""
    if not config.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in config.allowed_ips)
