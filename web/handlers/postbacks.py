"""``/api/postbacks/{network}``: offer networks report completions (API.md section 4).

Checks run before anything is written: the rate limit per network and source IP
(RATE_LIMIT_POSTBACK; a refused flood stores nothing, not even log rows), a known network, the
source IP, the signature. The
sale change and the log row commit together; a refused callback leaves only its log row.
Credits, the hot path, run as single self-contained statements on the autocommit pool
(``common/services/postbacks.py``, ``HOT_*``); reversals run the service in a transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from aiohttp import web
from psycopg.types.json import Jsonb

from common.errors import DomainError
from common.money import commission
from common.postbacks import (
    Adapter, Callback, PostbackInvalid, PostbackRefused, Reply, adapter_for, source_allowed,
)
from common.services.postbacks import (
    HOT_CREDIT, HOT_EXISTING, HOT_LOG, HOT_LOOKUP, log_postback, record_callback,
)
from web.envelope import error, ok
from web.keys import CLIENT_IP, DB, LIMITER, SETTINGS, TRACE_ID
from web.money_schemas import GenericPostbackQuery, NetworkPath, PostbackAck
from web.openapi import describe
from web.tasks import enqueue_after_commit

MAX_PARAMS = 50


async def _params(request: web.Request) -> dict[str, str]:
    params = {k: v for k, v in request.query.items()}
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded", "multipart/form-data"
    ):
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    if len(params) > MAX_PARAMS:
        params = dict(list(params.items())[:MAX_PARAMS])
    return params


def _reply(reply: Reply, data: dict[str, object] | None, message: str) -> web.Response:
    if reply.text is not None:
        return web.Response(status=reply.status, text=reply.text, content_type="text/plain")
    if reply.status == 200:
        return ok(data)
    return error(reply.status, message, code="forbidden" if reply.status == 403 else "invalid")


async def _refuse(
    request: web.Request, network: str, params: Mapping[str, str], verdict: str, reply: Reply,
    message: str, outcome: str | None = None,
) -> web.Response:
    await request.app[DB].run(
        log_postback, network=network, method=request.method, params=params,
        ip=request[CLIENT_IP], verdict=verdict, outcome=outcome,
    )
    return _reply(reply, None, message)


@describe(
    "Offer-network callback (server to server)", tags=["postbacks"], path=NetworkPath,
    query=GenericPostbackQuery, response=PostbackAck,
    description="Parameters, signature and reply follow the network's scheme (docs/money.md). "
    "A repeated transaction id is acknowledged again and changes nothing.",
    statuses={403: "Unknown network, source IP not allowed, or bad signature",
              422: "Unknown user or offer", 429: "Too many callbacks from this address"},
)
async def postback(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    network = request.match_info["network"].lower()[:64]
    await request.app[LIMITER].hit(
        "postback", settings.rate_limit_postback, network, request[CLIENT_IP])
    params = await _params(request)
    config = settings.networks.get(network)
    adapter = adapter_for(config) if config else None
    if config is None or adapter is None:
        return await _refuse(request, network, params, "unknown_network", Reply(403), "Unknown network")
    if not source_allowed(config, request[CLIENT_IP]):
        return await _refuse(request, network, params, "ip_refused", adapter.refused(), "Source not allowed")
    try:
        callback = adapter.verify(params, headers=request.headers, raw_query=request.query_string)
    except PostbackRefused:
        return await _refuse(request, network, params, "bad_signature", adapter.refused(), "Bad signature")
    except PostbackInvalid as exc:
        return await _refuse(request, network, params, "invalid", Reply(400, adapter.refused().text),
                             f"Invalid callback: {exc}")
    if callback.kind == "credit":
        return await _credit(request, network, params, callback, adapter)
    try:
        result = await request.app[DB].run(
            record_callback, network=network, method=request.method, params=params,
            ip=request[CLIENT_IP], callback=callback, hold_seconds=settings.sale_hold_seconds,
        )
    except DomainError as exc:  # unknown user or offer: logged, and the network may retry
        return await _refuse(request, network, params, "accepted", Reply(422, adapter.refused().text),
                             exc.message, outcome=getattr(exc, "outcome", "refused"))
    return _reply(adapter.accepted(), {"saleId": result.sale_id, "status": result.status}, "")


async def _credit(
    request: web.Request, network: str, params: dict[str, str], callback: Callback, adapter: Adapter,
) -> web.Response:
    """The hot path: each statement atomic on its own, on the autocommit pool (no thread)."""
    db, hold = request.app[DB], request.app[SETTINGS].sale_hold_seconds
    logged = {"network": network, "method": request.method, "params": Jsonb(params),
              "ip": request[CLIENT_IP], "trace_id": request[TRACE_ID]}
    found = await db.fetch_one(HOT_LOOKUP, {
        "network": network, "external_id": callback.txn_id, "offer": callback.offer_external_id})
    assert found is not None
    if found["sale_id"] is not None:  # a repeat: acknowledged again, nothing changes
        await db.fetch_one(HOT_LOG, {**logged, "verdict": "accepted", "outcome": "duplicate",
                                     "sale_id": found["sale_id"]})
        return _reply(adapter.accepted(), {"saleId": found["sale_id"], "status": found["status"]}, "")
    if found["offer_id"] is None:
        await db.fetch_one(HOT_LOG, {**logged, "verdict": "accepted", "outcome": "unknown_offer"})
        return _reply(Reply(422, adapter.refused().text), None, "Unknown offer")
    earned = commission(payout_type=found["payout_type"], user_share=found["user_share"],
                        fixed_payout=found["fixed_payout"], network_amount=callback.amount)
    row = await db.fetch_one(HOT_CREDIT, {
        **logged, "user_id": callback.user_id, "offer_id": found["offer_id"],
        "external_id": callback.txn_id, "sale_amount": max(callback.amount, Decimal(0)),
        "commission": earned, "hold": hold})
    assert row is not None
    if row["sale_id"] is not None:
        if hold == 0:
            await enqueue_after_commit("sales.approve_sale", row["sale_id"])
        return _reply(adapter.accepted(), {"saleId": row["sale_id"], "status": "pending"}, "")
    if not row["user_exists"]:
        return _reply(Reply(422, adapter.refused().text), None, "Unknown user")
    # A concurrent callback inserted it after this statement's snapshot: answer with its sale.
    again = await db.fetch_one(HOT_EXISTING, {"network": network, "external_id": callback.txn_id})
    assert again is not None
    return _reply(adapter.accepted(), {"saleId": again["id"], "status": again["status"]}, "")


ROUTES = [
    ("GET", "/postbacks/{network}", postback),
    ("POST", "/postbacks/{network}", postback),
]
