"""Withdrawals (docs/money.md "Withdrawals"). ``POST /payments`` requires ``Idempotency-Key``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from common.errors import NotFound
from common.models.payments import Payment
from common.payouts import BREAKER_NAME  # noqa: F401  (registers the breaker for /health)
from common.services.payments import cancel_payment, payment_json, request_withdrawal
from common.sql import compile_query
from web.auth import current_user, require_user
from web.envelope import ok, pagination
from web.idempotency import HEADER, idempotency_key, request_hash, run_once
from web.ids import IdPath, path_id
from web.keys import CLIENT_IP, DB, LIMITER, SETTINGS
from web.money_schemas import PaymentOut
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import Model, PageQuery, examples
from web.validation import parse_query, read_json, validate

_p = Payment.__table__
_PAGE = compile_query(
    select(_p, func.count().over().label("total"))
    .where(_p.c.user_id == bindparam("user_id"))
    .order_by(_p.c.id.desc()).limit(bindparam("limit")).offset(bindparam("offset"))
)
_COUNT = compile_query(select(func.count().label("total")).where(_p.c.user_id == bindparam("user_id")))
_ONE = compile_query(select(_p).where(_p.c.id == bindparam("id"), _p.c.user_id == bindparam("user_id")))


class WithdrawalBody(Model):
    model_config = examples({"amount": 25.5, "method": "paypal", "destination": "ada@example.com"})
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    method: Literal["paypal", "crypto", "giftcard"]
    destination: str = Field(min_length=3, max_length=256)


@describe(
    "Request a withdrawal (funds held at acceptance)", tags=["payments"], body=WithdrawalBody,
    response=PaymentOut, status=202,
    headers={"Idempotency-Key": HEADER},
    statuses={400: "Idempotency-Key missing or malformed",
              403: "Withdrawals are frozen on this account (docs/risk.md)",
              409: "Idempotency-Key reused with another body, or still in progress",
              422: "Over the balance, under MIN_WITHDRAWAL, or more than 2 decimals",
              429: "Too many withdrawal requests (RATE_LIMIT_WITHDRAWAL per user)"},
)
@require_user
async def create_payment(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    user_id = current_user(request).user_id
    # Counted before the Idempotency-Key is read: replays count too, and a refusal claims no key.
    await request.app[LIMITER].hit("withdrawal:user", settings.rate_limit_withdrawal, user_id)
    key = idempotency_key(request)
    raw = await read_json(request)
    body = validate(WithdrawalBody, raw)

    def withdraw(session: Session, _claim_id: int) -> dict[str, Any]:
        return request_withdrawal(
            session, user_id=user_id, amount=body.amount, method=body.method,
            destination=body.destination, minimum=settings.min_withdrawal,
            auto_pay_limit=settings.auto_pay_limit, ip=request[CLIENT_IP],
        )

    payment = await run_once(request, withdraw, owner_id=user_id, key=key,
                             fingerprint=request_hash(raw), status=202, data=payment_json)
    if isinstance(payment, web.Response):  # the stored first answer
        return payment
    return ok(payment_json(payment), status=202)


@describe("The user's own payments", tags=["payments"], query=PageQuery, response=PaymentOut,
          list=True)
@require_user
async def list_payments(request: web.Request) -> web.Response:
    q = parse_query(request, PageQuery)
    params = {"user_id": current_user(request).user_id, "limit": q.limit, "offset": q.offset}
    rows, total = await fetch_page(request.app[DB], _PAGE, _COUNT, params, page=q.page)
    return ok([payment_json(r) for r in rows], page=pagination(q.page, q.limit, total))


def _payment_id(request: web.Request) -> int:
    return path_id(request, "Payment")


@describe("One of the user's payments", tags=["payments"], path=IdPath, response=PaymentOut,
          statuses={404: "No such payment of this user"})
@require_user
async def get_payment(request: web.Request) -> web.Response:
    row = await request.app[DB].fetch_one(
        _ONE, {"id": _payment_id(request), "user_id": current_user(request).user_id})
    if row is None:
        raise NotFound("Payment not found")
    return ok(payment_json(row))


@describe("Cancel a pending payment (the hold returns to the balance)", tags=["payments"],
          path=IdPath, response=PaymentOut,
          statuses={404: "No such payment of this user", 409: "Not pending"})
@require_user
async def cancel(request: web.Request) -> web.Response:
    row = await request.app[DB].run(
        cancel_payment, user_id=current_user(request).user_id, payment_id=_payment_id(request))
    return ok(payment_json(row))


ROUTES = [
    ("POST", "/payments", create_payment),
    ("GET", "/payments", list_payments),
    ("GET", "/payments/{id:\\d+}", get_payment),
    ("POST", "/payments/{id:\\d+}/cancel", cancel),
]
