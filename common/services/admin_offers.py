"""Admin offer management (docs/api.md "Admin").

Created offers are ``pending``; approval makes them ``active`` and emits ``offer:new`` to
everyone; rejection keeps its reason in ``rejection_reason``. DELETE is soft: the offer becomes
``paused`` (sales and postbacks keep pointing at it), and approving it again re-activates it.
Each write is one guarded UPDATE on the locked row plus an audit row with before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping, func, select, update
from sqlalchemy.orm import Session

from common.errors import Conflict, InvalidInput, NotFound, declare_codes
from common.events import emit
from common.models import Offer
from common.money import commission
from common.services.audit import record_audit
from common.services.clicks import check_tracking_url
from common.services.offers import OfferOut, create_offer
from common.wire import jsonable

_o = Offer.__table__
declare_codes("fixed_payout_required")
AUDITED = ("title", "description", "category", "network", "external_id", "status", "payout_type",
           "user_share", "fixed_payout", "network_payout", "payout", "rejection_reason",
           "tracking_url")


def _snapshot(row: Any) -> dict[str, Any]:
    return {k: (str(row[k]) if isinstance(row[k], Decimal) else row[k]) for k in AUDITED}


def list_offers(session: Session, *, status: str | None, limit: int,
                offset: int) -> tuple[Sequence[RowMapping], int]:
    where = [_o.c.status == status] if status else []
    total = session.execute(select(func.count()).select_from(_o).where(*where)).scalar_one()
    rows = session.execute(
        select(_o).where(*where).order_by(_o.c.id.desc()).limit(limit).offset(offset)
    ).mappings().all()
    return rows, total


def _locked(session: Session, offer_id: int) -> RowMapping:
    row = session.execute(select(_o).where(_o.c.id == offer_id).with_for_update()).mappings().first()
    if row is None:
        raise NotFound("Offer not found")
    return row


def get_offer(session: Session, *, offer_id: int) -> RowMapping:
    row = session.execute(select(_o).where(_o.c.id == offer_id)).mappings().first()
    if row is None:
        raise NotFound("Offer not found")
    return row


def _audit(session: Session, action: str, audit: dict[str, Any], offer_id: int,
           before: Any, after: Any) -> None:
    record_audit(session, action=action, target_type="offer", target_id=offer_id,
                 before=_snapshot(before) if before is not None else None,
                 after=_snapshot(after), **audit)


def admin_create_offer(session: Session, *, audit: dict[str, Any], **fields: Any) -> RowMapping:
    """A new ``pending`` offer. ``audit`` = {actor_id, ip, trace_id}. Conflict on a duplicate
    (network, external_id)."""
    _check_rule(fields)
    exists = session.execute(select(_o.c.id).where(
        _o.c.network == fields["network"], _o.c.external_id == fields["external_id"])).first()
    if exists is not None:
        raise Conflict("An offer with this network and externalId exists")
    offer_id = create_offer(session, status="pending", **fields)
    row = session.execute(select(_o).where(_o.c.id == offer_id)).mappings().one()
    _audit(session, "offer.create", audit, offer_id, None, row)
    return row


def _check_rule(values: dict[str, Any]) -> None:
    if values.get("payout_type") == "fixed" and values.get("fixed_payout") is None:
        # The document states it for a new offer (OfferBody); a change is checked against the
        # offer it changes, which no schema can see.
        raise InvalidInput("A fixed payout needs fixedPayout", errors=["fixedPayout: required"],
                           code="fixed_payout_required")
    if values.get("tracking_url") == "":
        values["tracking_url"] = None  # an empty string removes it
    if values.get("tracking_url") is not None:
        check_tracking_url(values["tracking_url"])


def _write(session: Session, offer_id: int, before: RowMapping, values: dict[str, Any]
           ) -> RowMapping:
    return session.execute(
        update(_o).where(_o.c.id == offer_id, _o.c.status == before["status"])
        .values(**values, updated_at=func.now()).returning(*_o.c)
    ).mappings().one()


def update_offer(session: Session, *, offer_id: int, changes: dict[str, Any],
                 audit: dict[str, Any]) -> RowMapping:
    """Change fields (not the status); ``payout`` follows the payout rule again."""
    before = _locked(session, offer_id)
    _check_rule(changes)
    merged = {**before, **changes}
    _check_rule(merged)
    changes["payout"] = commission(
        payout_type=merged["payout_type"], user_share=Decimal(merged["user_share"]),
        fixed_payout=merged["fixed_payout"], network_amount=Decimal(merged["network_payout"]),
    )
    after = _write(session, offer_id, before, changes)
    _audit(session, "offer.update", audit, offer_id, before, after)
    return after


def set_offer_status(session: Session, *, offer_id: int, status: str, audit: dict[str, Any],
                     reason: str | None = None) -> RowMapping:
    """``active`` (approve: emits ``offer:new`` when it was not active), ``rejected`` (with the
    reason) or ``paused`` (soft delete). Setting the current status changes nothing."""
    before = _locked(session, offer_id)
    if before["status"] == status and status != "rejected":
        return before
    values: dict[str, Any] = {"status": status}
    if status == "rejected":
        values["rejection_reason"] = reason
    elif status == "active":
        values["rejection_reason"] = None
    after = _write(session, offer_id, before, values)
    action = {"active": "offer.approve", "rejected": "offer.reject", "paused": "offer.delete"}[status]
    _audit(session, action, audit, offer_id, before, after)
    if status == "active":
        emit(session, event="offer:new", data={"offer": jsonable(OfferOut.of(after)),
                                               "category": after["category"]})
    return after
