"""Missing-credit claims (API.md section 11, docs/money.md "Claims").

A member may claim a click that the network never reported, inside the claim window (at least
``CLAIM_MIN_AGE_SECONDS`` and at most ``CLAIM_MAX_AGE_DAYS`` after the click) and only while the
click has no sale.
"""

from __future__ import annotations

import datetime as dt

from common.errors import InvalidInput


class ClaimRefused(InvalidInput):
    """A claim the rules do not allow (422); ``code`` names the reason for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, errors=[f"clickId: {message}"])
        self.code = code


def claim_refusal(*, clicked_at: dt.datetime, has_sale: bool, now: dt.datetime,
                  min_age_seconds: int, max_age_days: int) -> ClaimRefused | None:
    """Why a click may not be claimed now (None: it may). The one rule behind ``POST /claims``
    and ``claimable`` in ``GET /clicks``."""
    if has_sale:
        return ClaimRefused("click_has_sale", "The click already has a sale")
    age = now - clicked_at
    if age < dt.timedelta(seconds=min_age_seconds):
        return ClaimRefused("claim_too_early", f"A click can be claimed {min_age_seconds} seconds "
                            "after it, once the network had time to report it")
    if age > dt.timedelta(days=max_age_days):
        return ClaimRefused("claim_too_late", f"A click can be claimed at most {max_age_days} "
                            "days after it")
    return None

