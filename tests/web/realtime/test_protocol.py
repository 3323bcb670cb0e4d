"""``/ws`` from a client's side: authentication both ways, every event, errors and close codes."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import WSMsgType

from common.security.tokens import issue_access_token
from tests.web.realtime.conftest import close_code, connect, next_frame, wait_for_event
from web.realtime import HUB


async def test_auth_frame_then_ready_ping_and_pong(app_client, someone) -> None:
    me = someone()
    ws = await app_client.ws_connect("/ws")
    await ws.send_json({"event": "auth", "data": {"token": me.token}})
    assert await next_frame(ws) == {"event": "ready", "data": {"userId": me.id}}
    await ws.send_json({"event": "ping"})
    assert await next_frame(ws) == {"event": "pong", "data": {}}
    await ws.close()


async def test_websocket_pings_are_answered_before_and_after_authentication(
        app_client, someone) -> None:
    me = someone()
    ws = await app_client.ws_connect("/ws", autoping=False)
    await ws.ping(b"early")
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"early")
    await ws.send_json({"event": "auth", "data": {"token": me.token}})
    assert await next_frame(ws) == {"event": "ready", "data": {"userId": me.id}}
    await ws.ping(b"later")
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"later")
    await ws.close()


async def test_token_on_the_url(app_client, someone) -> None:
    me = someone()
    ws = await connect(app_client, me)
    await ws.send_json({"event": "ping", "data": {}})
    assert (await next_frame(ws))["event"] == "pong"
    await ws.close()


@pytest.mark.parametrize("first", [
    {"event": "auth", "data": {"token": "not-a-jwt"}},
    {"event": "auth", "data": {"token": 12}},
    {"event": "auth", "data": {}},
    {"event": "ping", "data": {}},
    "not json",
])
async def test_bad_first_frame_closes_4401(app_client, first) -> None:
    ws = await app_client.ws_connect("/ws")
    if isinstance(first, str):
        await ws.send_str(first)
    else:
        await ws.send_json(first)
    assert await close_code(ws) == 4401


async def test_bad_token_on_the_url_closes_4401(app_client) -> None:
    ws = await app_client.ws_connect("/ws", params={"token": "x.y.z"})
    assert await close_code(ws) == 4401


async def test_no_auth_frame_in_time_closes_4401(app_client) -> None:
    ws = await app_client.ws_connect("/ws")
    assert await close_code(ws) == 4401  # ws_auth_timeout is 0.5 s in these tests


async def test_refresh_token_is_refused(app_client, someone, settings) -> None:
    import jwt

    me = someone()
    claims = jwt.decode(me.token, options={"verify_signature": False})
    refresh = jwt.encode({**claims, "type": "refresh"}, settings.jwt_secret, algorithm="HS256")
    ws = await app_client.ws_connect("/ws", params={"token": refresh})
    assert await close_code(ws) == 4401


@pytest.mark.parametrize("status", ["suspended", "banned"])
async def test_blocked_account_closes_4403(start_app, ws_settings, someone, status) -> None:
    blocked = someone(status=status)
    client = await start_app(ws_settings)
    ws = await client.ws_connect("/ws", params={"token": blocked.token})
    assert await close_code(ws) == 4403


async def test_foreign_origin_is_refused_before_the_upgrade(app_client, someone, ws_settings) -> None:
    me = someone()
    resp = await app_client.get(
        "/ws", params={"token": me.token}, headers={
            "Origin": "https://evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert resp.status == 403
    body = await resp.json()
    assert body["success"] is False and body["message"] == "Origin not allowed"
    ws = await app_client.ws_connect(
        "/ws", params={"token": me.token}, origin=ws_settings.allowed_origins[0]
    )
    assert (await next_frame(ws))["event"] == "ready"
    await ws.close()


async def test_the_apps_own_origin_is_allowed(app_client, someone) -> None:
    """The console and the demo page are served by the app: their socket's Origin is the host
    the request came to, which ALLOWED_ORIGINS need not list."""
    me = someone()
    own = f"http://{app_client.server.host}:{app_client.server.port}"
    ws = await app_client.ws_connect("/ws", params={"token": me.token}, origin=own)
    assert (await next_frame(ws))["event"] == "ready"
    await ws.close()
    # Another port on the same host is another origin.
    resp = await app_client.get("/ws", params={"token": me.token}, headers={
        "Origin": f"http://{app_client.server.host}:1", "Upgrade": "websocket",
        "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    })
    assert resp.status == 403


async def test_frame_over_the_limit_closes_1009(app_client, someone) -> None:
    ws = await connect(app_client, someone())
    await ws.send_str('{"event": "ping", "data": {"pad": "' + "x" * 20_000 + '"}}')
    assert await close_code(ws) == 1009


async def test_per_user_cap_closes_4429(app_client, someone) -> None:
    me = someone()
    open_ = [await connect(app_client, me) for _ in range(3)]
    extra = await app_client.ws_connect("/ws", params={"token": me.token})
    assert await close_code(extra) == 4429
    for ws in open_:
        await ws.close()


async def test_expired_token_closes_after_the_grace(app_client, someone, settings) -> None:
    me = someone()
    # A token issued so that it expires one second from now.
    short = issue_access_token(settings, user_id=me.id, email="x@example.com", role="user",
                               now=time.time() - settings.access_token_ttl + 1)
    ws = await app_client.ws_connect("/ws", params={"token": short})
    assert (await next_frame(ws))["event"] == "ready"
    assert await close_code(ws) == 4401


async def test_a_fresh_auth_frame_extends_the_socket(app_client, someone, settings) -> None:
    me = someone()
    short = issue_access_token(settings, user_id=me.id, email="x@example.com", role="user",
                               now=time.time() - settings.access_token_ttl + 1)
    ws = await app_client.ws_connect("/ws", params={"token": short})
    assert (await next_frame(ws))["event"] == "ready"
    await ws.send_json({"event": "auth", "data": {"token": me.token}})
    assert await next_frame(ws) == {"event": "ready", "data": {"userId": me.id}}
    other = someone()
    await ws.send_json({"event": "auth", "data": {"token": other.token}})
    assert (await next_frame(ws))["data"]["code"] == "forbidden"
    await ws.send_json({"event": "auth", "data": {"token": "junk"}})
    assert (await next_frame(ws))["data"]["code"] == "unauthorized"
    # Past the first token's expiry and grace, the socket still answers.
    deadline = time.time() + 1.5
    while time.time() < deadline:
        await ws.send_json({"event": "ping"})
        assert (await next_frame(ws))["event"] == "pong"
    await ws.close()


async def test_user_all_and_internal_events(app_client, someone, publish) -> None:
    me, other = someone(), someone()
    ws = await connect(app_client, me)
    mine = publish("balance:updated", {"newBalance": 5, "change": 5, "reason": "sale"}, user_id=me.id)
    publish("balance:updated", {"newBalance": 1}, user_id=other.id)
    publish("offer:new", {"offer": {"id": 1}, "category": "games"})
    assert await next_frame(ws) == {
        "event": "balance:updated", "id": mine,
        "data": {"newBalance": 5, "change": 5, "reason": "sale"},
    }
    assert await next_frame(ws) == {
        "event": "offer:new", "data": {"offer": {"id": 1}, "category": "games"}
    }
    publish("account:role", {"role": "user"}, user_id=me.id)
    publish("leaderboard:updated", {"leaderboard": [], "period": "daily"})
    assert (await next_frame(ws))["event"] == "leaderboard:updated"  # account:role never shows
    await ws.close()


async def test_account_status_change_closes_every_socket_4403(app_client, someone, publish) -> None:
    me, bystander = someone(), someone()
    sockets = [await connect(app_client, me) for _ in range(2)]
    other = await connect(app_client, bystander)
    publish("account:status", {"status": "active"}, user_id=me.id)
    publish("account:status", {"status": "suspended"}, user_id=me.id)
    for ws in sockets:
        assert await close_code(ws) == 4403
    await other.send_json({"event": "ping"})
    assert (await next_frame(other))["event"] == "pong"
    await other.close()


async def test_shutdown_closes_sockets_1001(start_app, ws_settings, someone) -> None:
    client = await start_app(ws_settings)
    me = someone()
    ws = await connect(client, me)
    waiting = await client.ws_connect("/ws")  # not authenticated yet
    hub = client.app[HUB]
    stopping = asyncio.create_task(client.server.close())
    assert await close_code(ws) == 1001
    assert await close_code(waiting) == 1001
    await stopping
    assert hub.stats() == {"sockets": 0, "users": 0, "rooms": 0, "pending": 0}
    assert not hub.running


async def test_unknown_event_and_binary_frames_get_errors(app_client, someone) -> None:
    ws = await connect(app_client, someone())
    await ws.send_json({"event": "nope", "data": {}})
    assert (await next_frame(ws))["data"] == {"message": "Unknown event", "code": "unknown_event"}
    await ws.send_bytes(b"\x00\x01")
    assert (await next_frame(ws))["data"]["code"] == "bad_frame"
    await ws.send_json({"event": "ping"})
    assert (await wait_for_event(ws, "pong"))["data"] == {}
    await ws.close()
    assert ws.closed and (await ws.receive()).type is WSMsgType.CLOSED
