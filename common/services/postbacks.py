"""Recording offer-network callbacks: the log row, and the sale change a verified one makes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from common.effects import enqueue_after_commit
from common.postbacks import Callback
from common.services.sales import (
    ADOPT_CTES,
    ADOPT_RESULT,
    CREDIT_CTES,
    CREDIT_RESULT,
    LOOKUP,
    SaleOutcome,
    credit_sale,
    reverse_callback,
)
from common.sql import compile_query
from common.tracing import current_trace_id

# One callback's row in ``postback_log``: run through a session by ``log_postback``, and compiled
# (``HOT_LOG``) for the web's fast path; ``log_row`` makes its parameters for both.
LOG = text(
    """
    INSERT INTO postback_log (network, method, params, ip, verdict, outcome, sale_id, trace_id,
                              txn_id, user_id, replay_of)
    VALUES (:network, :method, :params, :ip, :verdict, :outcome, :sale_id, :trace_id,
            :txn_id, :user_id, :replay_of)
    RETURNING id
    """
).bindparams(bindparam("params", type_=JSONB))


def log_row(
    *, network: str, method: str, params: Mapping[str, str], ip: str | None, verdict: str,
    outcome: str | None = None, sale_id: int | None = None, trace_id: str | None = None,
    txn_id: str | None = None, user_id: int | None = None, replay_of: int | None = None,
) -> dict[str, Any]:
    """``txn_id`` / ``user_id``: what the callback names (``Adapter.log_keys``), for the search."""
    return {"network": network[:64], "method": method, "params": dict(params), "ip": ip,
            "verdict": verdict, "outcome": outcome, "sale_id": sale_id,
            "trace_id": trace_id or current_trace_id(), "txn_id": txn_id, "user_id": user_id,
            "replay_of": replay_of}


def log_postback(session: Session, **row: Any) -> int:
    """One row per callback, whatever became of it (support, replays after a fix); its id."""
    return int(session.execute(LOG, log_row(**row)).scalar_one())


def record_callback(
    session: Session,
    *,
    network: str,
    method: str,
    params: Mapping[str, str],
    ip: str | None,
    callback: Callback,
    hold_seconds: int,
    click_days: int | None = None,
    replay_of: int | None = None,
) -> tuple[SaleOutcome, int]:
    """A verified callback: credit (a pending sale) or reversal, and its log row, in one
    transaction; the outcome and the log row's id. Raises ``UnknownOffer`` / ``UnknownUser`` /
    ``UserMismatch`` / ``ClickMismatch`` (the caller logs those apart). A credit without a hold is
    approved by a worker once committed, as on the web's fast path."""
    if callback.kind == "credit":
        result = credit_sale(
            session, network=network, external_id=callback.txn_id, user_id=callback.user_id,
            offer_external_id=callback.offer_external_id, amount=callback.amount,
            hold_seconds=hold_seconds, click_id=callback.click_id, click_days=click_days,
        )
    else:
        result = reverse_callback(
            session, network=network, external_id=callback.txn_id, user_id=callback.user_id,
            offer_external_id=callback.offer_external_id, amount=callback.amount,
            click_id=callback.click_id, click_days=click_days,
        )
    if result.outcome == "credited" and hold_seconds == 0:
        enqueue_after_commit(session, "sales.approve_sale", result.sale_id)
    log_id = log_postback(
        session, network=network, method=method, params=params, ip=ip, verdict="accepted",
        outcome=result.outcome, sale_id=result.sale_id, txn_id=callback.txn_id,
        user_id=callback.user_id, replay_of=replay_of,
    )
    return result, log_id


# The web's hot path for credits (web/handlers/postbacks.py): each statement is atomic on its own,
# so it runs on the web's autocommit pool (``fetch_one``) without a thread, a session or a
# transaction block. They are the sales service's statements compiled once, and the handler takes
# every decision through ``plan_credit`` / ``credited`` / ``adopted``, as ``credit_sale`` does.
# The statements that write (a sale credited, a claim's sale adopted) write their log row in the
# same statement, only when they wrote; any other final outcome is logged with ``HOT_LOG`` once
# decided.
HOT_LOOKUP = compile_query(LOOKUP)
HOT_LOG = compile_query(LOG)
_LOGGED = """, logged AS (
        INSERT INTO postback_log (network, method, params, ip, verdict, outcome, sale_id, trace_id,
                                  txn_id, user_id)
        SELECT :network, :method, :params, :ip, 'accepted', {outcome}, {sale}, :trace_id,
               :external_id, :user_id
        WHERE {when}
    )
    """
HOT_CREDIT = compile_query(text(
    CREDIT_CTES
    + _LOGGED.format(
        outcome="CASE WHEN EXISTS (SELECT 1 FROM sale) THEN 'credited' ELSE 'unknown_user' END",
        sale="(SELECT id FROM sale)",
        when="EXISTS (SELECT 1 FROM sale) OR NOT EXISTS (SELECT 1 FROM owner)")
    + CREDIT_RESULT
))
HOT_ADOPT = compile_query(text(
    ADOPT_CTES
    + _LOGGED.format(outcome="'claimed'", sale="(SELECT id FROM adopted)",
                     when="EXISTS (SELECT 1 FROM adopted)")
    + ADOPT_RESULT
))
