"""Money rules shared by every service (docs/money.md)."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

CENT = Decimal("0.01")
# The largest amount received from outside (a network's payout for one completion): far above any
# real offer, and small enough that every commission and sum of them fits NUMERIC(14,2) and
# Decimal's 28 digits (``Decimal("1e30").quantize`` raises instead of rounding).
MAX_AMOUNT = Decimal(1000000)
# More decimals than this is not a price anyone pays, and an exponent like 1e-999999999 is more
# than PostgreSQL's NUMERIC can hold.
MAX_DECIMALS = 8
_SMALLEST = Decimal(1).scaleb(-MAX_DECIMALS)


def to_cents(value: Decimal) -> Decimal:
    """THE rounding rule: a computed amount is truncated toward zero to whole cents (ROUND_DOWN).

    A user never receives more than their share, and the platform never pays out a fraction of a
    cent that the network did not pay.
    """
    return Decimal(value).quantize(CENT, rounding=ROUND_DOWN)


_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_amount(raw: object) -> Decimal:
    """An amount as received (string or number): exact, finite, at most ``MAX_AMOUNT`` in size
    and ``MAX_DECIMALS`` decimals (trailing zeros aside); anything else is a ``ValueError``."""
    text = str(raw).strip()
    if not _AMOUNT.fullmatch(text):  # ASCII only: Decimal() also reads "1_0" and "١٠"  # noqa: RUF003
        raise ValueError(f"not an amount: {raw!r}")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount: {raw!r}") from None
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise ValueError(f"not an amount: {raw!r}")
    if value != value.quantize(_SMALLEST, rounding=ROUND_DOWN):  # exact: bounded just above
        raise ValueError(f"not an amount: {raw!r}")
    return value


def commission(
    *, payout_type: str, user_share: Decimal, fixed_payout: Decimal | None, network_amount: Decimal
) -> Decimal:
    """The user's commission for one completion the network pays ``network_amount`` for."""
    if payout_type == "fixed":
        return to_cents(fixed_payout or Decimal(0))
    return to_cents(max(network_amount, Decimal(0)) * user_share)


def cents_from_json(value: float) -> Decimal:
    """A two-decimal amount that travelled as a JSON number (a ``jsonb`` read back as a float),
    as the exact Decimal it was written from: a NUMERIC(14,2) has at most 14 significant digits,
    under the 15 a float's shortest repr always gives back."""
    return Decimal(repr(value)).quantize(CENT)
