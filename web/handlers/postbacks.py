"""``/api/postbacks/{network}``: offer networks report completions (API.md section 4).

Checks run before anything is written: a known network, the source IP, the signature. The
sale change and the log row commit together; a refused callback leaves only its log row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import web

from common.errors import DomainError
from common.postbacks import (
    PostbackInvalid, PostbackRefused, Reply, adapter_for, source_allowed,
)
from common.services.postbacks import log_postback, record_callback
from common.taskqueue import enqueue
from web.envelope import error, ok
from web.keys import CLIENT_IP, DB, SETTINGS
from web.money_schemas import GenericPostbackQuery, NetworkPath, PostbackAck
from web.openapi import describe

log = logging.getLogger(__name__)
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
              422: "Unknown user or offer"},
)
async def postback(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    network = request.match_info["network"].lower()
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
    try:
        result = await request.app[DB].run(
            record_callback, network=network, method=request.method, params=params,
            ip=request[CLIENT_IP], callback=callback, hold_seconds=settings.sale_hold_seconds,
        )
    except DomainError as exc:  # unknown user or offer: logged, and the network may retry
        return await _refuse(request, network, params, "accepted", Reply(422, adapter.refused().text),
                             exc.message, outcome=getattr(exc, "outcome", "refused"))
    if result.outcome == "credited" and settings.sale_hold_seconds == 0:
        await _enqueue_approval(result.sale_id)
    return _reply(adapter.accepted(), {"saleId": result.sale_id, "status": result.status}, "")


async def _enqueue_approval(sale_id: int | None) -> None:
    """No hold: approve now rather than at the next beat tick. A lost enqueue costs only
    latency, since the beat batch approves every due sale."""
    try:
        await asyncio.to_thread(enqueue, "sales.approve_sale", sale_id)
    except Exception:
        log.warning("approval left to the beat batch", exc_info=True, extra={"saleId": sale_id})


ROUTES = [
    ("GET", "/postbacks/{network}", postback),
    ("POST", "/postbacks/{network}", postback),
]
