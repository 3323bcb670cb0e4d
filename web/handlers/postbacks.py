"""``/api/postbacks/{network}``: offer networks report completions (docs/money.md "Postbacks").

Checks run before anything is written, in this order: the rate limit per source IP
(RATE_LIMIT_POSTBACK_IP, before the network name is even looked up, so made-up names share one
budget), a configured network (an unknown one stores nothing and is only counted in /metrics), the
rate limit per network and source IP (RATE_LIMIT_POSTBACK), the source IP, a readable body, the
signature. A refused flood stores nothing; a refused callback of a known network leaves only its
log row, with its parameters bounded (``common/postbacks/params.py``). The sale change and the log
row commit together. Every reply is the one the network expects (``Adapter.reply``).
Credits, the hot path, run as single self-contained statements on the autocommit pool
(``common/services/postbacks.py``, ``HOT_*``); reversals run the service in a transaction.
"""

from __future__ import annotations

import binascii
import zlib
from collections.abc import Mapping

from aiohttp import web
from psycopg.types.json import Jsonb

from common.errors import DomainError, Forbidden, RateLimited
from common.metrics import POSTBACKS_UNKNOWN_NETWORK
from common.postbacks import (
    Adapter,
    Callback,
    Outcome,
    PostbackInvalid,
    PostbackRefused,
    Reply,
    adapter_for,
    bounded_params,
    source_allowed,
)
from common.ratelimit import Check
from common.services.postbacks import (
    HOT_ADOPT,
    HOT_CREDIT,
    HOT_LOG,
    HOT_LOOKUP,
    log_postback,
    log_row,
    record_callback,
)
from common.services.risk_signals import credit_risk_params
from common.services.sales import (
    ATTEMPTS,
    Adoption,
    CreditContended,
    CreditRequest,
    SaleOutcome,
    UnknownUser,
    adopted,
    credited,
    plan_credit,
)
from web.envelope import error, ok
from web.keys import CLIENT_IP, DB, LIMITER, SETTINGS, TRACE_ID
from web.middlewares import rate_limit_headers
from web.money_schemas import GenericPostbackQuery, NetworkPath, PostbackAck
from web.openapi import describe
from web.tasks import enqueue_from_loop

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_CODES = {403: "forbidden", 429: "rate_limited"}


# What aiohttp raises for a body it cannot decode: no multipart boundary, an unknown charset or
# Content-Transfer-Encoding, a broken base64 or compressed part.
_UNREADABLE = (ValueError, LookupError, RuntimeError, binascii.Error, zlib.error, EOFError)


# The refusals a network's reply names as such; any other domain error is a plain "refused".
_NAMED_REFUSALS: dict[str, Outcome] = {"unknown_user": "unknown_user",
                                       "unknown_offer": "unknown_offer"}

async def _params(request: web.Request) -> tuple[dict[str, str], bool]:
    """The bounded parameters (query, then a form body), and whether the body could be read."""
    pairs = list(request.query.items())
    readable = True
    if request.method == "POST" and request.content_type in _FORMS:
        try:
            form = await request.post()
        except _UNREADABLE:
            readable = False
        else:
            pairs += [(k, v) for k, v in form.items() if isinstance(v, str)]
    return bounded_params(pairs), readable


def _reply(reply: Reply, data: dict[str, object] | None, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    if reply.text is not None:
        return web.Response(status=reply.status, text=reply.text, content_type="text/plain",
                            headers=headers)
    if reply.status == 200:
        return ok(data)
    return error(reply.status, message, code=_CODES.get(reply.status, "invalid"), headers=headers)


async def _refuse(
    request: web.Request, adapter: Adapter, network: str, params: Mapping[str, str], verdict: str,
    reply: Reply, message: str, outcome: str | None = None,
) -> web.Response:
    await request.app[DB].run(
        log_postback, network=network, method=request.method, params=params,
        ip=request[CLIENT_IP], verdict=verdict, outcome=outcome, trace_id=request[TRACE_ID],
        **adapter.log_keys(params),
    )
    return _reply(reply, None, message)


def _accepted(adapter: Adapter, sale_id: int | None, status: str | None) -> web.Response:
    return _reply(adapter.reply("accepted"), {"saleId": sale_id, "status": status}, "")


def _adapter(request: web.Request, network: str) -> Adapter | None:
    config = request.app[SETTINGS].networks.get(network)
    return adapter_for(config) if config else None


async def _admit(request: web.Request, network: str) -> Adapter:
    """The network's adapter once both rate limits pass; Forbidden for an unknown network. The
    limit per source IP is counted first and alone decides for an unknown network; a known
    network's two limits are counted in one round trip, in that order."""
    settings, limiter, ip = request.app[SETTINGS], request.app[LIMITER], request[CLIENT_IP]
    per_ip = Check("postback:ip", settings.rate_limit_postback_ip, (ip,))
    adapter = _adapter(request, network)
    if adapter is None:
        await limiter.hit_all(per_ip)
        POSTBACKS_UNKNOWN_NETWORK.inc()
        raise Forbidden("Unknown network")
    await limiter.hit_all(per_ip, Check("postback", settings.rate_limit_postback, (network, ip)))
    return adapter


@describe(
    "Offer-network callback (server to server)", tags=["postbacks"], path=NetworkPath,
    query=GenericPostbackQuery, response=PostbackAck,
    description="Parameters, signature and reply follow the network's scheme (docs/money.md). "
    "A repeated transaction id is acknowledged again and changes nothing.",
    statuses={400: "Signed, but a parameter is missing or malformed, or the body unreadable",
              403: "Unknown network, source IP not allowed, or bad signature",
              422: "Unknown user or offer, an amount out of bounds, or a click_id that is "
                   "unknown, another user's or offer's, expired or already converted",
              429: "Too many callbacks from this address"},
)
async def postback(request: web.Request) -> web.Response:
    network = request.match_info["network"].lower()[:64]
    try:
        adapter = await _admit(request, network)
    except RateLimited as exc:
        known = _adapter(request, network)
        if known is None or known.reply("rate_limited").text is None:
            raise  # the standard 429 envelope
        return _reply(known.reply("rate_limited"), None, exc.message, rate_limit_headers(exc))
    params, readable = await _params(request)
    if not source_allowed(adapter.config, request[CLIENT_IP]):
        return await _refuse(request, adapter, network, params, "ip_refused",
                             adapter.reply("bad_signature"), "Source not allowed")
    if not readable:
        return await _refuse(request, adapter, network, params, "invalid",
                             adapter.reply("malformed"), "Invalid callback: unreadable body")
    try:
        callback = adapter.verify(params, headers=request.headers, raw_query=request.query_string)
    except PostbackRefused:
        return await _refuse(request, adapter, network, params, "bad_signature",
                             adapter.reply("bad_signature"), "Bad signature")
    except PostbackInvalid as exc:
        return await _refuse(request, adapter, network, params, "invalid",
                             adapter.reply(exc.outcome), f"Invalid callback: {exc}")
    if callback.kind == "credit":
        return await _credit(request, network, params, callback, adapter)
    try:
        result, _ = await request.app[DB].run(
            record_callback, network=network, method=request.method, params=params,
            ip=request[CLIENT_IP], callback=callback,
            hold_seconds=request.app[SETTINGS].sale_hold_seconds,
            click_days=request.app[SETTINGS].click_retention_days,
        )
    except DomainError as exc:  # unknown user or offer: logged, and the network may retry
        outcome = getattr(exc, "outcome", "refused")
        refusal = _NAMED_REFUSALS.get(outcome, "refused")
        return await _refuse(request, adapter, network, params, "accepted",
                             adapter.reply(refusal), exc.message, outcome=outcome)
    return _accepted(adapter, result.sale_id, result.status)


async def _credit(
    request: web.Request, network: str, params: dict[str, str], callback: Callback, adapter: Adapter,
) -> web.Response:
    """The hot path: the sales service's statements, each atomic on its own, on the autocommit
    pool (no thread), and its decisions (``plan_credit``, ``credited``, ``adopted``), taken again
    from a fresh lookup when a concurrent change beat the write, as ``credit_sale`` does. The log
    row says the final outcome: written by the statement that credits or adopts, else once
    decided."""
    db, settings = request.app[DB], request.app[SETTINGS]
    hold = settings.sale_hold_seconds
    credit = CreditRequest(network=network, external_id=callback.txn_id, user_id=callback.user_id,
                           offer_external_id=callback.offer_external_id, amount=callback.amount,
                           hold_seconds=hold, click_id=callback.click_id,
                           click_days=settings.click_retention_days,
                           risk=credit_risk_params(settings))
    logged = {**log_row(network=network, method=request.method, params=params,
                        ip=request[CLIENT_IP], verdict="accepted", trace_id=request[TRACE_ID],
                        **adapter.log_keys(params)),
              "params": Jsonb(params)}
    try:
        for _ in range(ATTEMPTS):
            found = await db.fetch_one(HOT_LOOKUP, credit.lookup_params())
            assert found is not None
            plan = plan_credit(found, credit)
            if isinstance(plan, SaleOutcome):  # a repeat: acknowledged again, nothing changes
                await db.fetch_one(HOT_LOG, {**logged, "outcome": plan.outcome,
                                             "sale_id": plan.sale_id})
                return _accepted(adapter, plan.sale_id, plan.status)
            if isinstance(plan, Adoption):  # an approved claim's conversion: credited already
                row = await db.fetch_one(HOT_ADOPT, {**logged, **plan.params(credit),
                                                     "user_id": credit.user_id})
                result = adopted(row)
            else:
                row = await db.fetch_one(HOT_CREDIT, {**logged, **plan})
                assert row is not None
                result = credited(row)  # UnknownUser: the statement logged it
                if result is not None and hold == 0:
                    await enqueue_from_loop("sales.approve_sale", result.sale_id)
            if result is not None:
                return _accepted(adapter, result.sale_id, result.status)
        raise CreditContended(f"Transaction {callback.txn_id!r}: contended, try again")
    except UnknownUser as exc:
        return _reply(adapter.reply("unknown_user"), None, exc.message)
    except DomainError as exc:  # unknown offer, another user's transaction id, a click mismatch
        outcome = getattr(exc, "outcome", "refused")
        await db.fetch_one(HOT_LOG, {**logged, "outcome": outcome})
        refusal: Outcome = "unknown_offer" if outcome == "unknown_offer" else "refused"
        return _reply(adapter.reply(refusal), None, exc.message)


ROUTES = [
    ("GET", "/postbacks/{network}", postback),
    ("POST", "/postbacks/{network}", postback),
]
