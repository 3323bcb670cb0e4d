"""Admin: users (list, profile with ledger summary, status, balance adjustment)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, field_validator
from sqlalchemy.orm import Session

from common.models import User
from common.models.ledger import LEDGER_KINDS
from common.services.accounts import set_user_status
from common.services.admin_users import (
    UserDetail,
    adjust_balance,
    list_ledger_entries,
    list_users,
    user_detail,
)
from web.auth import current_user, require_admin
from web.envelope import ok
from web.handlers.admin.base import audit_context, paged
from web.handlers.admin.risk import risk_json
from web.handlers.admin.schemas import (
    AdjustmentOut,
    AdminReferralOut,
    AdminUserDetail,
    AdminUserOut,
    KindTotal,
    LedgerEntryOut,
    LedgerSummary,
    ReferrerOut,
    SalesTotal,
)
from web.idempotency import HEADER, idempotency_key, request_hash, run_once
from web.ids import IdPath, path_id
from web.keys import DB
from web.openapi import describe
from web.schemas import Model, PageQuery, examples
from web.validation import parse_body, parse_query, read_json, validate


class UsersQuery(PageQuery):
    search: str | None = Field(None, max_length=100)
    status: Literal["active", "suspended", "banned"] | None = None
    role: Literal["user", "admin"] | None = None


class LedgerQuery(PageQuery):
    kind: str | None = Field(None, json_schema_extra={"enum": list(LEDGER_KINDS)})

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in LEDGER_KINDS:
            raise ValueError(f"one of {', '.join(LEDGER_KINDS)}")
        return value


class StatusBody(Model):
    model_config = examples({"status": "suspended", "reason": "chargeback pattern under review"})
    status: Literal["active", "suspended", "banned"]
    reason: str = Field("", max_length=500)


class AdjustBody(Model):
    model_config = examples({"amount": -4.99, "reason": "duplicate credit for sale 812"})
    # Zero is refused by the service (adjust_balance); the document says so.
    amount: Decimal = Field(max_digits=14, decimal_places=2, json_schema_extra={"not": {"const": 0}})
    reason: str = Field(min_length=1, max_length=500)


@describe("Users, newest first (filters search, status, role)", tags=["admin"], query=UsersQuery, response=AdminUserOut, list=True)
@require_admin
async def users(request: web.Request) -> web.Response:
    q = parse_query(request, UsersQuery)
    return await paged(request, q, list_users, AdminUserOut, search=q.search, status=q.status,
                       role=q.role)


@describe("A user's profile plus ledger summary", tags=["admin"], path=IdPath, statuses={404: "No such user"}, response=AdminUserDetail)
@require_admin
async def user(request: web.Request) -> web.Response:
    detail = await request.app[DB].run(user_detail, user_id=path_id(request, "User"))
    return ok(_detail(detail))


def _detail(d: UserDetail) -> dict[str, Any]:
    ledger = LedgerSummary.of(total=d.ledger_total,
                              byKind={r["kind"]: KindTotal.of(r) for r in d.by_kind})
    referrer = d.referral.referrer
    referral = AdminReferralOut.of(
        referrer=None if referrer is None else ReferrerOut.of(referrer),
        referees=d.referral.referees, earnings=d.referral.earnings)
    return AdminUserDetail.of(d.user, ledger=ledger, debt=d.debt, referral=referral,
                              sales={r["status"]: SalesTotal.of(r) for r in d.sales},
                              risk=risk_json(d.risk))


@describe("A user's ledger entries, newest first (filter kind)", tags=["admin"], path=IdPath, query=LedgerQuery, statuses={404: "No such user"}, response=LedgerEntryOut, list=True)
@require_admin
async def ledger(request: web.Request) -> web.Response:
    user_id = path_id(request, "User")
    q = parse_query(request, LedgerQuery)
    return await paged(request, q, list_ledger_entries, LedgerEntryOut, user_id=user_id,
                       kind=q.kind)


@describe("Set a user's status (suspended/banned revoke sessions and close sockets)", tags=["admin"], path=IdPath, body=StatusBody, statuses={403: "Your own status", 404: "No such user"}, response=AdminUserOut)
@require_admin
async def status(request: web.Request) -> web.Response:
    user_id = path_id(request, "User")  # before the body: an id naming no row is a 404
    body = await parse_body(request, StatusBody)
    row = await request.app[DB].run(
        _set_status, user_id=user_id, status=body.status, reason=body.reason,
        **audit_context(request))
    return ok(AdminUserOut.of(row))


def _set_status(session: Session, **kwargs: Any) -> dict[str, Any]:
    """The auth engineer's ``set_user_status`` (revokes tokens, audits, closes sockets); the
    user's columns are read inside the transaction."""
    user = set_user_status(session, **kwargs)
    return {c.name: getattr(user, c.name) for c in User.__table__.c}


@describe("Adjust a balance through the ledger (signed amount)", tags=["admin"], path=IdPath, body=AdjustBody, headers={"Idempotency-Key": HEADER}, statuses={400: "Idempotency-Key missing or malformed", 404: "No such user", 409: "Idempotency-Key reused with another body, or in progress", 422: "A debit over the balance"}, response=AdjustmentOut)
@require_admin
async def adjust(request: web.Request) -> web.Response:
    admin_id = current_user(request).user_id
    user_id = path_id(request, "User")
    key = idempotency_key(request)
    raw = await read_json(request)
    body = validate(AdjustBody, raw)
    context = audit_context(request)

    def adjust_once(session: Session, claim_id: int) -> dict[str, Any]:
        return adjust_balance(session, user_id=user_id, amount=body.amount, reason=body.reason,
                              key=key, request_id=claim_id, **context)

    result = await run_once(request, adjust_once, owner_id=admin_id, key=key, status=200,
                            fingerprint=request_hash({"user": user_id, "body": raw}),
                            data=lambda adjusted: adjusted)
    return result if isinstance(result, web.Response) else ok(result)


ROUTES = [
    ("GET", "/admin/users", users),
    ("GET", "/admin/users/{id:\\d+}", user),
    ("GET", "/admin/users/{id:\\d+}/ledger", ledger),
    ("PUT", "/admin/users/{id:\\d+}/status", status),
    ("POST", "/admin/users/{id:\\d+}/adjust-balance", adjust),
]
