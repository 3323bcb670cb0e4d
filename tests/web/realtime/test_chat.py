"""Chat over the socket (join, leave, send, rate limit, validation) and over REST (rooms, history)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.web.realtime.conftest import connect, next_frame, wait_for_event

GENERAL = 1  # the room migration 0004 seeds


async def _join(ws, room_id: int = GENERAL) -> None:  # type: ignore[no-untyped-def]
    await ws.send_json({"event": "chat:join", "data": {"roomId": room_id}})
    assert await next_frame(ws) == {"event": "chat:joined", "data": {"roomId": room_id}}


async def test_message_is_stored_then_reaches_every_member(app_client, someone, committed) -> None:
    alice, bob, carol = someone(name="Alice"), someone(name="Bob"), someone()
    a, b, c = [await connect(app_client, p) for p in (alice, bob, carol)]
    await _join(a)
    await _join(b)
    await a.send_json({"event": "chat:send", "data": {"roomId": GENERAL, "content": "hi", "type": "text"}})
    got_a, got_b = await next_frame(a), await next_frame(b)
    assert got_a == got_b
    assert got_a["event"] == "chat:message" and "id" not in got_a
    message = got_a["data"]
    assert message["roomId"] == GENERAL and message["userId"] == alice.id
    assert message["content"] == "hi" and message["type"] == "text"
    assert message["user"] == {"name": "Alice", "avatar": None}
    assert message["timestamp"].endswith("Z")
    with committed.connect() as conn:
        stored = conn.execute(text("SELECT content, user_id FROM chat_messages WHERE id = :i"),
                              {"i": message["id"]}).one()
    assert tuple(stored) == ("hi", alice.id)
    await c.send_json({"event": "ping"})
    assert (await next_frame(c))["event"] == "pong"  # carol did not join: no message for her
    for ws in (a, b, c):
        await ws.close()


async def test_leave_stops_delivery(app_client, someone) -> None:
    alice, bob = someone(), someone()
    a, b = await connect(app_client, alice), await connect(app_client, bob)
    await _join(a)
    await _join(b)
    await b.send_json({"event": "chat:leave", "data": {"roomId": GENERAL}})
    assert await next_frame(b) == {"event": "chat:left", "data": {"roomId": GENERAL}}
    await a.send_json({"event": "chat:send", "data": {"roomId": GENERAL, "content": "anyone?"}})
    assert (await next_frame(a))["data"]["content"] == "anyone?"
    await b.send_json({"event": "ping"})
    assert (await next_frame(b))["event"] == "pong"
    await b.send_json({"event": "chat:leave", "data": {"roomId": GENERAL}})
    assert (await next_frame(b))["data"]["code"] == "not_joined"
    await a.close()
    await b.close()


@pytest.mark.parametrize(("data", "code"), [
    ({"roomId": GENERAL, "content": ""}, "invalid"),
    ({"roomId": GENERAL, "content": "x" * 2001}, "invalid"),
    ({"roomId": GENERAL, "content": "hi", "type": "video"}, "invalid"),
    ({"roomId": GENERAL, "content": 5}, "invalid"),
    ({"roomId": "one", "content": "hi"}, "invalid"),
    ({"roomId": 999, "content": "hi"}, "not_joined"),
])
async def test_invalid_messages_get_errors(app_client, someone, data, code) -> None:
    ws = await connect(app_client, someone())
    await _join(ws)
    await ws.send_json({"event": "chat:send", "data": data})
    frame = await next_frame(ws)
    assert frame["event"] == "error" and frame["data"]["code"] == code
    await ws.close()


async def test_join_unknown_room_is_not_found(app_client, someone) -> None:
    ws = await connect(app_client, someone())
    await ws.send_json({"event": "chat:join", "data": {"roomId": 424242}})
    assert (await next_frame(ws))["data"]["code"] == "not_found"
    await ws.close()


async def test_sending_too_fast_is_rate_limited(app_client, someone, ws_settings) -> None:
    ws = await connect(app_client, someone())
    await _join(ws)
    allowed = int(ws_settings.rate_limit_chat.split("/")[0])
    for n in range(allowed):
        await ws.send_json({"event": "chat:send", "data": {"roomId": GENERAL, "content": f"m{n}"}})
        assert (await wait_for_event(ws, "chat:message"))["data"]["content"] == f"m{n}"
    await ws.send_json({"event": "chat:send", "data": {"roomId": GENERAL, "content": "one more"}})
    frame = await next_frame(ws)
    assert frame["event"] == "error" and frame["data"]["code"] == "rate_limited"
    await ws.close()


async def test_rooms_and_history_over_rest(app_client, someone) -> None:
    alice, bob = someone(name="Alice"), someone(name="Bob")
    a = await connect(app_client, alice)
    await _join(a)
    headers = {"Authorization": f"Bearer {bob.token}"}
    resp = await app_client.get("/api/chat/rooms", headers=headers)
    rooms = (await resp.json())["data"]
    assert rooms == [{"id": GENERAL, "name": "General", "members": 1, "lastMessageAt": None}]
    for n in range(5):
        await a.send_json({"event": "chat:send", "data": {"roomId": GENERAL, "content": f"m{n}"}})
        await wait_for_event(a, "chat:message")
    resp = await app_client.get(f"/api/chat/rooms/{GENERAL}/messages?limit=3", headers=headers)
    page = (await resp.json())["data"]
    assert [m["content"] for m in page] == ["m2", "m3", "m4"]  # newest last
    assert page[0]["user"] == {"name": "Alice", "avatar": None} and page[0]["userId"] == alice.id
    before = page[0]["id"]
    resp = await app_client.get(f"/api/v1/chat/rooms/{GENERAL}/messages?before={before}", headers=headers)
    assert [m["content"] for m in (await resp.json())["data"]] == ["m0", "m1"]
    rooms = (await (await app_client.get("/api/chat/rooms", headers=headers)).json())["data"]
    assert rooms[0]["lastMessageAt"].endswith("Z")
    assert (await app_client.get("/api/chat/rooms/9999/messages", headers=headers)).status == 404
    assert (await app_client.get("/api/chat/rooms/1/messages?limit=0", headers=headers)).status == 400
    assert (await app_client.get("/api/chat/rooms")).status == 401
    await a.close()
