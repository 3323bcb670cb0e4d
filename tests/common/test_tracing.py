"""One trace id from an HTTP request, through the Celery task it causes, into the event it emits."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from common.config import Settings
from common.events import emit
from common.models.outbox import OutboxEvent
from common.taskqueue import celery_app, enqueue
from common.tracing import current_trace_id
from workers.context import context

PROBE = "default.trace_probe"
TRACE_ID = "trace-probe-0123456789"


@celery_app.task(name=PROBE)
def trace_probe(marker: str) -> None:
    """Test only: emit an outbox event from a worker, as the real tasks do."""
    with context().sessions() as session, session.begin():
        emit(session, event="payment:status", data={"marker": marker, "seen": current_trace_id()})


async def _probe_route(request: web.Request) -> web.Response:
    # As handlers do: blocking enqueue in a thread (asyncio.to_thread copies the trace context).
    await asyncio.to_thread(enqueue, PROBE, request.query["marker"])
    return web.json_response({"queued": True}, status=202)


@pytest.fixture
async def probe_client(aiohttp_client, settings: Settings, committed: Engine):  # type: ignore[no-untyped-def]
    from web.app import create_app

    app = create_app(settings)
    app.router.add_post("/test/probe", _probe_route)
    return await aiohttp_client(app)


async def _poll(fn, *, deadline: float = 20.0):  # type: ignore[no-untyped-def]
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        result = await fn()
        if result:
            return result
        await asyncio.sleep(0.05)  # polling with a deadline, not waiting for time
    raise AssertionError("not seen before the deadline")


@pytest.mark.committed
async def test_trace_id_flows_from_request_to_task_to_outbox_event(
    probe_client, celery_worker, committed: Engine  # type: ignore[no-untyped-def]
) -> None:
    resp = await probe_client.post("/test/probe?marker=m1", headers={"X-Trace-ID": TRACE_ID})
    assert resp.status == 202
    assert resp.headers["X-Trace-ID"] == TRACE_ID

    def row() -> OutboxEvent | None:
        with committed.connect() as conn:
            return conn.execute(
                select(OutboxEvent.__table__).where(OutboxEvent.event == "payment:status")
            ).first()

    event = await _poll(lambda: asyncio.to_thread(row))
    assert event.trace_id == TRACE_ID  # the outbox row, hence the pub/sub frame's traceId
    assert event.data == {"marker": "m1", "seen": TRACE_ID}  # the task ran with the id set

    async def counted() -> bool:
        text = await (await probe_client.get("/metrics")).text()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "savebucks_celery_tasks_total" and s.labels == {
                    "task": PROBE, "outcome": "success"
                }:
                    return s.value == 1
        return False

    assert await _poll(counted)


POSTBACK_TRACE = "trace-postback-0123456789"


@pytest.fixture
async def money_app(aiohttp_client, settings: Settings, committed: Engine):  # type: ignore[no-untyped-def]
    """The live app with the test network configured and no hold: a credit is approved at once."""
    from tests.fixtures.money import NETWORKS
    from web.app import create_app

    adjusted = settings.model_copy(update={"networks": NETWORKS, "sale_hold_seconds": 0})
    return await aiohttp_client(create_app(adjusted))


@pytest.mark.committed
async def test_one_trace_id_from_a_postback_to_the_socket_event(
    money_app, celery_worker, committed: Engine, settings: Settings  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy.orm import Session

    from common.security.tokens import issue_access_token
    from tests.fixtures.factories import make_user
    from tests.fixtures.money_factories import generic_params, make_offer

    with Session(committed, expire_on_commit=False) as session:
        user = make_user(session)
        make_offer(session, external_id="trace-offer")
        session.commit()
    token = issue_access_token(settings, user_id=user.id, email=user.email, role=user.role)
    ws = await money_app.ws_connect("/ws")
    await ws.send_json({"event": "auth", "data": {"token": token}})
    assert (await ws.receive_json(timeout=5))["event"] == "ready"

    params = generic_params(user_id=user.id, offer_id="trace-offer", txn_id="t-trace-1")
    resp = await money_app.get("/api/postbacks/testnet", params=params,
                               headers={"X-Trace-ID": POSTBACK_TRACE})
    assert resp.status == 200, await resp.text()

    # The approval runs in the worker (enqueued by the postback's request) and its
    # balance:updated reaches the socket through the outbox and the hub.
    until = time.monotonic() + 20
    frame: dict = {}
    while frame.get("event") != "balance:updated" or frame["data"].get("reason") != "sale_credit":
        frame = await ws.receive_json(timeout=max(0.1, until - time.monotonic()))
    await ws.close()

    with committed.connect() as conn:
        row = conn.execute(
            select(OutboxEvent.__table__).where(OutboxEvent.id == frame["id"])
        ).one()
    assert row.trace_id == POSTBACK_TRACE  # the socket frame's event, written by the worker
