"""Money rules shared by every service (docs/money.md)."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

CENT = Decimal("0.01")


def to_cents(value: Decimal) -> Decimal:
    """THE rounding rule: a computed amount is truncated toward zero to whole cents (ROUND_DOWN).

    A user never receives more than their share, and the platform never pays out a fraction of a
    cent that the network did not pay.
    """
    return Decimal(value).quantize(CENT, rounding=ROUND_DOWN)


def parse_amount(raw: object) -> Decimal:
    """An amount as received (string or number): exact, finite, at most 2 decimals."""
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount: {raw!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {raw!r}")
    return value


def commission(
    *, payout_type: str, user_share: Decimal, fixed_payout: Decimal | None, network_amount: Decimal
) -> Decimal:
    """The user's commission for one completion the network pays ``network_amount`` for."""
    if payout_type == "fixed":
        return to_cents(fixed_payout or Decimal(0))
    return to_cents(max(network_amount, Decimal(0)) * user_share)
