"""Recording offer-network callbacks: the log row, and the sale change a verified one makes."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from common.models.sales import PostbackLog
from common.postbacks import Callback
from common.services.sales import (
    CREDIT_CTES, CREDIT_RESULT, SaleOutcome, credit_sale, reverse_callback,
)
from common.sql import Query, compile_query
from common.tracing import current_trace_id

_log = PostbackLog.__table__


def log_postback(
    session: Session,
    *,
    network: str,
    method: str,
    params: Mapping[str, str],
    ip: str | None,
    verdict: str,
    outcome: str | None = None,
    sale_id: int | None = None,
) -> None:
    """One row per callback, whatever became of it (support, replays after a fix)."""
    session.execute(insert(_log).values(
        network=network[:64], method=method, params=dict(params), ip=ip, verdict=verdict,
        outcome=outcome, sale_id=sale_id, trace_id=current_trace_id(),
    ))


def record_callback(
    session: Session,
    *,
    network: str,
    method: str,
    params: Mapping[str, str],
    ip: str | None,
    callback: Callback,
    hold_seconds: int,
) -> SaleOutcome:
    """A verified callback: credit (a pending sale) or reversal, and its log row, in one
    transaction. Raises ``UnknownOffer`` / ``UnknownUser`` (the caller logs those apart)."""
    if callback.kind == "credit":
        result = credit_sale(
            session, network=network, external_id=callback.txn_id, user_id=callback.user_id,
            offer_external_id=callback.offer_external_id, amount=callback.amount,
            hold_seconds=hold_seconds,
        )
    else:
        result = reverse_callback(
            session, network=network, external_id=callback.txn_id, user_id=callback.user_id,
            offer_external_id=callback.offer_external_id, amount=callback.amount,
        )
    log_postback(
        session, network=network, method=method, params=params, ip=ip, verdict="accepted",
        outcome=result.outcome, sale_id=result.sale_id,
    )
    return result


# The web's hot path for credits (web/handlers/postbacks.py): each statement is atomic on its own,
# so it runs on the web's autocommit pool (``fetch_one``) without a thread, a session or a
# transaction block. Same rules as ``credit_sale``: the lookup reads the transaction id and the
# offer's payout rule; the credit inserts the sale unless (network, external_id) exists, adds the
# commission to pending_balance only when inserted, and writes the log row, all in one statement.
HOT_LOOKUP = Query(
    sql="""
    SELECT s.id AS sale_id, s.status, o.id AS offer_id, o.payout_type, o.user_share, o.fixed_payout
    FROM (SELECT 1) AS one
    LEFT JOIN sales s ON s.network = %(network)s AND s.external_id = %(external_id)s
    LEFT JOIN offers o ON o.network = %(network)s AND o.external_id = %(offer)s
    """,
    defaults={},
)
HOT_LOG = Query(
    sql="""
    INSERT INTO postback_log (network, method, params, ip, verdict, outcome, sale_id, trace_id)
    VALUES (%(network)s, %(method)s, %(params)s, %(ip)s, %(verdict)s, %(outcome)s, %(sale_id)s,
            %(trace_id)s)
    RETURNING id
    """,
    defaults={"sale_id": None, "outcome": None},
)
HOT_CREDIT = compile_query(text(
    CREDIT_CTES
    + """, logged AS (
        INSERT INTO postback_log (network, method, params, ip, verdict, outcome, sale_id, trace_id)
        SELECT :network, :method, :params, :ip, 'accepted',
               CASE WHEN EXISTS (SELECT 1 FROM sale) THEN 'credited'
                    WHEN NOT EXISTS (SELECT 1 FROM owner) THEN 'unknown_user'
                    ELSE 'duplicate' END,
               (SELECT id FROM sale), :trace_id
    )
    """
    + CREDIT_RESULT
))
HOT_EXISTING = Query(
    sql="SELECT id, status FROM sales WHERE network = %(network)s AND external_id = %(external_id)s",
    defaults={},
)
