"""Searching the postback log for support: by transaction id, user, network, outcome and time,
newest first.

A search is one statement on the web's autocommit pool: the page's rows, each carrying the
filtered total (a scalar subquery, counted once, over the index alone). Each combination of
filters is its own statement, compiled once, so that every one reaches its index through a plan
of its own (``ix_postback_log_*`` in ``common/models/sales.py``): a statement with optional
filters (``:x IS NULL OR ...``) would share one plan that fits none of them.

``outcome`` is what became of a callback: the outcome of an accepted one (``credited``,
``duplicate``, ...), else the verdict that refused it (``bad_signature``, ``ip_refused``,
``invalid``), which is stored with no outcome.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, FromClause, bindparam, func, literal_column, select

from common.models.sales import PostbackLog
from common.sql import Query, compile_query

# Verdicts that refuse a callback (its log row has no outcome).
REFUSALS = ("bad_signature", "ip_refused", "invalid")
# Outcomes of accepted callbacks. ``click_mismatch`` and ``claimed`` are those of click
# attribution (docs/money.md "Clicks").
ACCEPTED_OUTCOMES = (
    "credited", "duplicate", "rejected", "reversed", "already_final", "unknown_sale",
    "reversal_before_credit", "unknown_user", "unknown_offer", "user_mismatch", "refused",
    "click_mismatch", "claimed",
)
OUTCOMES = ACCEPTED_OUTCOMES + REFUSALS

_log = PostbackLog.__table__


@dataclass(frozen=True, slots=True)
class LogSearch:
    """The filters of a search; None means "any"."""

    network: str | None = None
    outcome: str | None = None
    txn_id: str | None = None
    user_id: int | None = None
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    def shape(self) -> tuple[str, ...]:
        """Which filters are set: the key of this search's statement."""
        keys = [k for k in ("network", "txn_id", "user_id", "since", "until")
                if getattr(self, k) is not None]
        if self.outcome is not None:
            keys.append("refusal" if self.outcome in REFUSALS else "outcome")
        return tuple(keys)

    def params(self) -> dict[str, Any]:
        names = ("network", "outcome", "txn_id", "user_id", "since", "until")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


def conditions(table: FromClause, shape: tuple[str, ...]) -> list[ColumnElement[bool]]:
    """The WHERE of a search of ``shape`` (``LogSearch.shape``) over ``table``."""
    c = table.c
    found: dict[str, list[ColumnElement[bool]]] = {
        "network": [c.network == bindparam("network")],
        "txn_id": [c.txn_id == bindparam("txn_id")],
        "user_id": [c.user_id == bindparam("user_id")],
        "since": [c.created_at >= bindparam("since")],
        "until": [c.created_at < bindparam("until")],
        "outcome": [c.outcome == bindparam("outcome")],
        # The literal lets every plan, a generic one included, use the partial index of refusals.
        "refusal": [c.verdict == bindparam("outcome"),
                    c.verdict != literal_column("'accepted'")],
    }
    return [cond for key in shape for cond in found[key]]


@cache
def search_queries(shape: tuple[str, ...]) -> tuple[Query, Query]:
    """(the page's rows with ``total``, the count alone for a page past the end) for a shape."""
    counted = _log.alias("counted")
    total = (select(func.count()).select_from(counted)
             .where(*conditions(counted, shape)).scalar_subquery())
    rows = (
        select(_log, total.label("total"))
        .where(*conditions(_log, shape))
        .order_by(_log.c.created_at.desc(), _log.c.id.desc())
        .limit(bindparam("limit")).offset(bindparam("offset"))
    )
    count = select(func.count().label("total")).select_from(_log).where(*conditions(_log, shape))
    return compile_query(rows), compile_query(count)
