"""The risk model's fixed parts (docs/risk.md): the signal kinds, their default weights, which of
them decay, and the blocked-address list parsed once into a set that answers in a few dict
lookups. Pure functions over settings values: ``common.config`` validates with them at start-up,
the services use them on every signal.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

SHARED_SIGNUP_IP = "shared_signup_ip"
SHARED_PAYOUT_DESTINATION = "shared_payout_destination"
FAST_CONVERSION = "fast_conversion"
POSTBACK_VELOCITY = "postback_velocity"
REVERSAL_RATE = "reversal_rate"
LISTED_IP = "listed_ip"
REFERRAL_ABUSE = "referral_abuse"

DEFAULT_WEIGHTS: dict[str, Decimal] = {
    SHARED_SIGNUP_IP: Decimal(20),
    SHARED_PAYOUT_DESTINATION: Decimal(40),
    FAST_CONVERSION: Decimal(10),
    POSTBACK_VELOCITY: Decimal(25),
    REVERSAL_RATE: Decimal(30),
    LISTED_IP: Decimal(50),
    REFERRAL_ABUSE: Decimal(40),
}
KINDS = tuple(DEFAULT_WEIGHTS)
# Behaviour that a member can stop (conversions, reversals, where they connect from) stops
# counting after RISK_DECAY_DAYS; links between accounts (an address at sign-up, a payout
# destination, a referral pair) stay true for good and never decay.
DECAYING = frozenset({FAST_CONVERSION, POSTBACK_VELOCITY, REVERSAL_RATE, LISTED_IP})


def parse_weights(spec: str) -> dict[str, Decimal]:
    """``RISK_WEIGHTS`` (``kind=weight,...``) over the defaults; an unknown kind is a ValueError."""
    weights = dict(DEFAULT_WEIGHTS)
    for part in spec.split(","):
        if not part.strip():
            continue
        kind, _, value = part.partition("=")
        kind = kind.strip()
        if kind not in DEFAULT_WEIGHTS:
            raise ValueError(f"RISK_WEIGHTS: unknown signal kind {kind!r} (one of {', '.join(KINDS)})")
        weights[kind] = Decimal(value.strip())
    return weights


@lru_cache(maxsize=8)
def weights(spec: str) -> dict[str, Decimal]:
    """``parse_weights`` once per value (the settings never change in a process); read only."""
    return parse_weights(spec)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedNetworks:
    """A set of CIDRs, looked up by masking the address with each prefix length the set uses
    (a handful), never by scanning the list: the click path asks on every click."""

    def __init__(self, networks: list[Network]) -> None:
        self._by_length: dict[tuple[int, int], set[int]] = {}
        for net in networks:
            self._by_length.setdefault((net.version, net.prefixlen), set()).add(
                int(net.network_address))

    def __bool__(self) -> bool:
        return bool(self._by_length)

    def match(self, ip: str | None) -> str | None:
        """The listed network (``a.b.c.d/n``) that holds ``ip``, or None."""
        if not self._by_length or not ip:
            return None
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        bits, value = address.max_prefixlen, int(address)
        for (version, length), starts in self._by_length.items():
            if version != address.version:
                continue
            start = value & (((1 << length) - 1) << (bits - length))
            if start in starts:
                return f"{ipaddress.ip_address(start)}/{length}"
        return None


def _cidr_lines(spec: str) -> list[str]:
    """The CIDRs of ``RISK_BLOCKED_CIDRS``: a comma list, or a file of them (one per line or
    comma separated, ``#`` starts a comment) when the value names a path."""
    spec = spec.strip()
    if spec.startswith(("/", "./")) or spec.endswith((".txt", ".list", ".conf")):
        text = Path(spec).read_text(encoding="utf-8")
        spec = ",".join(line.split("#", 1)[0] for line in text.splitlines())
    return [part.strip() for part in spec.split(",") if part.strip()]


@lru_cache(maxsize=8)
def blocked_networks(spec: str) -> BlockedNetworks:
    """``RISK_BLOCKED_CIDRS`` parsed once per process (a changed file needs a restart, like any
    setting). A bad entry or an unreadable file is a ValueError naming it."""
    try:
        lines = _cidr_lines(spec)
    except OSError as exc:
        raise ValueError(f"RISK_BLOCKED_CIDRS: cannot read {spec!r}: {exc.strerror}") from None
    networks = []
    for line in lines:
        try:
            networks.append(ipaddress.ip_network(line, strict=False))
        except ValueError:
            raise ValueError(f"RISK_BLOCKED_CIDRS: {line!r} is not a CIDR") from None
    return BlockedNetworks(networks)
