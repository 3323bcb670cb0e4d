"""Recording offer-network callbacks: the log row, and the sale change a verified one makes."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert
from sqlalchemy.orm import Session

from common.models.sales import PostbackLog
from common.postbacks import Callback
from common.services.sales import SaleOutcome, credit_sale, reverse_by_external_id
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
        result = reverse_by_external_id(session, network=network, external_id=callback.txn_id)
    log_postback(
        session, network=network, method=method, params=params, ip=ip, verdict="accepted",
        outcome=result.outcome, sale_id=result.sale_id,
    )
    return result
