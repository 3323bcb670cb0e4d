"""The hub under several instances, slow clients, and Redis going away."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

import orjson
import redis
from aiohttp import WSMsgType

from common.events import Event
from common.redis import events_channel
from tests.web.realtime.conftest import DEADLINE, close_code, connect, eventually, next_frame
from web.realtime import HUB


async def test_an_event_reaches_the_users_sockets_on_both_instances(
    start_app, ws_settings, someone, publish
) -> None:
    one, two = await start_app(ws_settings), await start_app(ws_settings)
    me = someone()
    a, b = await connect(one, me), await connect(two, me)
    event_id = publish("notification:new", {"id": 7, "title": "hello"}, user_id=me.id)
    for ws in (a, b):
        assert await next_frame(ws) == {
            "event": "notification:new", "id": event_id, "data": {"id": 7, "title": "hello"}
        }
    await a.close()
    await b.close()


async def test_a_chat_message_crosses_instances(start_app, ws_settings, someone) -> None:
    one, two = await start_app(ws_settings), await start_app(ws_settings)
    alice, bob = someone(), someone()
    a, b = await connect(one, alice), await connect(two, bob)
    for ws in (a, b):
        await ws.send_json({"event": "chat:join", "data": {"roomId": 1}})
        assert (await next_frame(ws))["event"] == "chat:joined"
    await a.send_json({"event": "chat:send", "data": {"roomId": 1, "content": "over there?"}})
    got = await next_frame(b)
    assert got["event"] == "chat:message" and got["data"]["content"] == "over there?"
    assert got["data"]["userId"] == alice.id
    assert (await next_frame(a))["data"]["id"] == got["data"]["id"]
    await a.close()
    await b.close()


async def test_duplicate_publications_are_dropped(app_client, someone, settings, redis_sync) -> None:
    me = someone()
    ws = await connect(app_client, me)
    wire = Event(10**9, "user", me.id, "balance:updated", {"n": 1}, None).wire()
    for _ in range(3):  # the outbox sweep may publish an event again
        redis_sync.publish(events_channel(settings), wire)
    redis_sync.publish(events_channel(settings), b"not an event")
    assert (await next_frame(ws))["id"] == 10**9
    await ws.send_json({"event": "ping"})
    assert (await next_frame(ws))["event"] == "pong"
    await ws.close()


async def _raw_socket_that_never_reads(port: int, token: str) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that completes the upgrade, then stops."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


async def test_a_client_that_never_reads_is_closed_while_others_get_everything(
    start_app, ws_settings, someone, settings, redis_sync
) -> None:
    client = await start_app(ws_settings.model_copy(update={
        "ws_send_queue": 64, "ws_max_sockets_per_user": 100, "ws_socket_send_buffer": 65_536,
    }))
    hub = client.app[HUB]
    me = someone()
    slow = await _raw_socket_that_never_reads(client.port, me.token)
    readers = [await connect(client, me) for _ in range(50)]
    await eventually(lambda: len(hub.sockets) == 51)
    total, payload = 600, "x" * 2048

    async def read_all(ws) -> list[int]:  # type: ignore[no-untyped-def]
        got = []
        while len(got) < total:
            got.append((await next_frame(ws))["data"]["n"])
        return got

    reading = [asyncio.create_task(read_all(ws)) for ws in readers]
    channel = events_channel(settings)
    with redis_sync.pipeline(transaction=False) as pipe:
        for n in range(total):
            pipe.publish(channel, Event(n + 1, "all", None, "offer:new", {"n": n, "p": payload}, None).wire())
        pipe.execute()
    results = await asyncio.wait_for(asyncio.gather(*reading), DEADLINE * 3)
    assert all(got == list(range(total)) for got in results)
    await eventually(lambda: hub.closed_too_slow == 1 and len(hub.sockets) == 50)
    slow.close()
    for ws in readers:
        await ws.close()
    await eventually(lambda: hub.stats()["sockets"] == 0)


def _kill_hub_subscriber(redis_sync: redis.Redis, prefix: str) -> int:
    """Drop the hub's pub/sub connection (what a Redis restart does to it), and only that one."""
    killed = 0
    for entry in redis_sync.client_list(_type="pubsub"):
        if entry.get("name", "").startswith(f"{prefix}:ws-hub:"):
            killed += redis_sync.client_kill_filter(_id=entry["id"])
    return killed


async def test_sockets_resume_by_id_after_redis_drops_the_subscriber(
    app_client, someone, publish, settings, redis_sync
) -> None:
    from web.realtime import protocol

    me = someone()
    ws = await connect(app_client, me)
    assert _kill_hub_subscriber(redis_sync, settings.redis_prefix) == 1
    # Events published while the subscriber was away never reached the socket: once it follows
    # the channel again, the socket is closed with 1001 and the hint to resume by id.
    msg = await ws.receive(timeout=DEADLINE)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == protocol.GOING_AWAY
    assert msg.extra == protocol.RESUME_HINT
    again = await connect(app_client, me)
    end = time.monotonic() + DEADLINE
    while True:
        assert time.monotonic() < end, "delivery did not resume"
        publish("balance:updated", {}, user_id=me.id)
        try:
            frame = await again.receive(timeout=0.3)
        except TimeoutError:
            continue
        assert frame.type is WSMsgType.TEXT and orjson.loads(frame.data)["event"] == "balance:updated"
        break
    await again.close()
    assert await close_code(again) is not None


async def test_a_peer_that_stops_answering_pings_is_reaped(start_app, ws_settings, someone) -> None:
    client = await start_app(ws_settings.model_copy(update={"ws_heartbeat": 1.0}))
    hub = client.app[HUB]
    me = someone()
    ws = await client.ws_connect("/ws", params={"token": me.token}, autoping=False)
    assert (await next_frame(ws))["event"] == "ready"
    await eventually(lambda: len(hub.sockets) == 1)
    await eventually(lambda: len(hub.sockets) == 0)  # no pong within the heartbeat: closed
    await ws.close()


async def test_the_sweep_pings_a_silent_peer_and_keeps_one_that_answers(app_client, someone) -> None:
    hub = app_client.app[HUB]
    ws = await connect(app_client, someone())  # the client answers pings (autoping)
    await eventually(lambda: len(hub.sockets) == 1)
    conn = next(iter(hub.sockets))
    loop = asyncio.get_running_loop()
    # The sweep's steps driven by hand, the socket made to look silent for a whole heartbeat.
    conn.seen -= hub.heartbeat
    assert hub.beat(loop.time()) == 0 and conn.pinged is not None
    pinged = conn.pinged
    reading = asyncio.create_task(ws.receive())  # aiohttp's client answers pings as it reads
    await eventually(lambda: conn.seen > pinged)  # the pong came back to the read loop
    assert hub.beat(loop.time()) == 0
    assert conn.pinged is None and conn in hub.sockets and hub.dropped_silent == 0
    reading.cancel()
    await ws.close()


async def test_an_event_a_worker_publishes_reaches_the_socket(
    app_client, someone, sync_ctx, celery_worker
) -> None:
    from sqlalchemy.orm import Session

    from common.events import emit
    from common.taskqueue import enqueue

    me = someone()
    ws = await connect(app_client, me)
    with Session(sync_ctx.engine) as session, session.begin():
        lost = emit(session, event="payment:status", data={"paymentId": 4, "status": "paid"},
                    user_id=me.id)
    # A plain session, not a unit of work: as if the committing process died before publishing.
    await asyncio.get_running_loop().run_in_executor(None, enqueue, "events.sweep_outbox", 0.0)
    frame = await next_frame(ws, timeout=DEADLINE * 2)
    assert frame == {"event": "payment:status", "id": lost.id,
                     "data": {"paymentId": 4, "status": "paid"}}
    await ws.close()


async def test_after_a_lost_subscription_old_sockets_get_nothing_more(app_client, someone) -> None:
    """Their client resumes from the last id it saw: an event routed to them after the
    resubscription, ahead of one published while the subscriber was away, would raise that mark
    past the lost one."""
    from web.realtime import HUB, protocol

    me = someone()
    ws = await connect(app_client, me)
    hub = app_client.app[HUB]
    hub.on_lost()
    hub.on_subscribed()
    # The first message on the new subscription, routed before the closing task has run.
    hub.route(orjson.dumps({"id": 10**12, "event": "balance:updated", "target": "user",
                            "targetId": me.id, "data": {}}))
    msg = await ws.receive(timeout=DEADLINE)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
    assert ws.close_code == protocol.GOING_AWAY
