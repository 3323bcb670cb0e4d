"""Admin reads of users and balance adjustments (docs/api.md "Admin").

Status changes are ``common.services.accounts.set_user_status`` (it revokes refresh tokens,
audits and emits ``account:status``); this module does not re-implement them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping, Select, func, or_, select, text
from sqlalchemy.orm import Session

from common.errors import Conflict, InvalidInput, NotFound
from common.models import LedgerEntry, Sale, User
from common.services.audit import record_audit
from common.services.ledger import post_entry
from common.services.referrals import Referrals, admin_referrals
from common.services.risk import user_risk

_u, _l, _s = User.__table__, LedgerEntry.__table__, Sale.__table__
_PUBLIC = (_u.c.id, _u.c.email, _u.c.name, _u.c.avatar, _u.c.role, _u.c.status, _u.c.balance,
           _u.c.pending_balance, _u.c.created_at, _u.c.updated_at, _u.c.referral_code,
           _u.c.payouts_frozen)


@dataclass(frozen=True, slots=True)
class UserDetail:
    """A user's row with its ledger's totals by entry kind and its sales' by status."""

    user: RowMapping
    ledger_total: Decimal
    by_kind: Sequence[RowMapping]  # kind, entries, total
    sales: Sequence[RowMapping]  # status, count, commission
    debt: Decimal
    referral: Referrals
    risk: dict[str, Any]  # score, signals (common.services.risk.user_risk)


def _filtered(stmt: Select[Any], *, search: str | None, status: str | None,
              role: str | None) -> Select[Any]:
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(_u.c.email.ilike(like), _u.c.name.ilike(like)))
    if status:
        stmt = stmt.where(_u.c.status == status)
    if role:
        stmt = stmt.where(_u.c.role == role)
    return stmt


def list_users(session: Session, *, search: str | None, status: str | None, role: str | None,
               limit: int, offset: int) -> tuple[Sequence[RowMapping], int]:
    """Newest first; returns (page, total)."""
    flt = {"search": search, "status": status, "role": role}
    total = session.execute(_filtered(select(func.count()).select_from(_u), **flt)).scalar_one()
    rows = session.execute(
        _filtered(select(*_PUBLIC), **flt).order_by(_u.c.id.desc()).limit(limit).offset(offset)
    ).mappings().all()
    return rows, total


_SUMMARY = text(
    """
    SELECT kind, count(*) AS entries, sum(amount) AS total
    FROM ledger_entries WHERE user_id = :user_id GROUP BY kind ORDER BY kind
    """
)
_SALES = text(
    """
    SELECT status, count(*) AS count, coalesce(sum(commission_amount), 0) AS commission
    FROM sales WHERE user_id = :user_id GROUP BY status ORDER BY status
    """
)


def user_detail(session: Session, *, user_id: int) -> UserDetail:
    """The user's row, its ledger summed by entry kind, its sales by status, its debt and its
    referrals."""
    row = session.execute(select(*_PUBLIC).where(_u.c.id == user_id)).mappings().first()
    if row is None:
        raise NotFound("User not found")
    by_kind = session.execute(_SUMMARY, {"user_id": user_id}).mappings().all()
    sales = session.execute(_SALES, {"user_id": user_id}).mappings().all()
    ledger_total = sum((r["total"] for r in by_kind), Decimal(0))
    return UserDetail(row, ledger_total, by_kind, sales, debt=max(-row["balance"], Decimal(0)),
                      referral=admin_referrals(session, user_id=user_id),
                      risk=user_risk(session, user_id=user_id))


def list_ledger_entries(session: Session, *, user_id: int, kind: str | None, limit: int,
                        offset: int) -> tuple[Sequence[RowMapping], int]:
    """One user's ledger entries, newest first (the index on user_id, id serves it); returns
    (page, total). ``NotFound`` for no user, so an empty page means an empty ledger."""
    if session.get(User, user_id) is None:
        raise NotFound("User not found")
    where = [LedgerEntry.user_id == user_id]
    if kind is not None:
        where.append(LedgerEntry.kind == kind)
    total = session.execute(select(func.count()).select_from(LedgerEntry).where(*where)).scalar_one()
    rows = session.execute(
        select(LedgerEntry.id, LedgerEntry.amount, LedgerEntry.kind, LedgerEntry.reference_type,
               LedgerEntry.reference_id, LedgerEntry.created_at)
        .where(*where).order_by(LedgerEntry.id.desc()).limit(limit).offset(offset)
    ).mappings().all()
    return rows, total


def adjust_balance(session: Session, *, actor_id: int, user_id: int, amount: Decimal, reason: str,
                   key: str, request_id: int, ip: str | None, trace_id: str | None) -> dict[str, Any]:
    """Post a signed ``adjustment`` through the ledger for one executed request.

    ``request_id`` is the server's id of this execution (the Idempotency-Key claim): the ledger
    key ``adjustment:request:<id>`` is fresh each time a key is executed, even when an expired
    key is reused, and never longer than the column whatever the client's key. ``key`` is only
    recorded in the audit row. Raises ``InsufficientFunds`` (422) for a debit over the balance,
    ``NotFound`` for no user, ``Conflict`` if this request already posted (nothing changed).
    """
    if amount == 0:
        raise InvalidInput("Amount must not be zero", errors=["amount: non-zero"])
    before = session.execute(select(_u.c.balance).where(_u.c.id == user_id)).scalar()
    if before is None:
        raise NotFound("User not found")
    posted = post_entry(
        session, user_id=user_id, amount=amount, kind="adjustment",
        key=f"adjustment:request:{request_id}", reference_type="user", reference_id=user_id,
        reason=reason,
    )
    if posted is None:  # never answer for a change this request did not make
        raise Conflict("This adjustment was already posted")
    record_audit(
        session, action="user.adjust_balance", actor_id=actor_id, target_type="user",
        target_id=user_id, before={"balance": str(before)},
        after={"balance": str(posted.balance), "amount": str(amount), "reason": reason,
               "idempotencyKey": key, "entryId": posted.entry_id},
        ip=ip, trace_id=trace_id,
    )
    return {"userId": user_id, "amount": amount, "balance": posted.balance, "reason": reason,
            "entryId": posted.entry_id}
