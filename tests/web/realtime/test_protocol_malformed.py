"""Hundreds of malformed frames: each gets the right error (or close), the server never crashes,
and no socket, user or room is left in the hub's registry."""

from __future__ import annotations

import random

import orjson

from tests.web.realtime.conftest import close_code, connect, eventually, next_frame
from web.realtime import HUB


def _frames(rng: random.Random) -> list[tuple[str | bytes, str]]:
    """(frame, expected error code) pairs covering every kind of bad input."""
    cases: list[tuple[str | bytes, str]] = []
    junk = ["", "{", "nul", "[1,2", '{"event": }', "\x00\x01", "🙂", "{'event': 'ping'}"]
    cases += [(rng.choice(junk) + str(n), "bad_frame") for n in range(40)]
    cases += [(orjson.dumps(v).decode(), "bad_frame")
              for v in ([1], 3, "ping", None, True, [], 1.5, {"data": {}}, {"event": 5},
                        {"event": ""}, {"event": ["ping"]}, {"event": None})] * 3
    cases += [(orjson.dumps({"event": "ping", "data": v}).decode(), "invalid")
              for v in ([1], "x", 3, True)] * 5
    cases += [(orjson.dumps({"event": f"nope:{n}", "data": {}}).decode(), "unknown_event")
              for n in range(40)]
    cases += [(orjson.dumps({"event": "chat:send", "data": {"roomId": 1, "content": "hi"}}).decode(),
               "not_joined") for _ in range(20)]
    cases += [(orjson.dumps({"event": "chat:leave", "data": {"roomId": 1}}).decode(), "not_joined")
              for _ in range(10)]
    cases += [(orjson.dumps({"event": e, "data": {"roomId": v}}).decode(), "invalid")
              for e in ("chat:join", "chat:send", "chat:leave")
              for v in (None, "abc", -1, 0, 1.5, [1], {"a": 1}, True)]
    cases += [(bytes([n % 256]) * 3, "bad_frame") for n in range(20)]
    rng.shuffle(cases)
    return cases


async def test_malformed_frames_get_errors_and_leave_nothing_behind(app_client, someone) -> None:
    hub = app_client.app[HUB]
    rng = random.Random(5)
    cases = _frames(rng)
    assert len(cases) >= 200
    people = [someone() for _ in range(3)]
    sockets = [await connect(app_client, p) for p in people]
    for n, (frame, code) in enumerate(cases):
        ws = sockets[n % len(sockets)]
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        reply = await next_frame(ws)
        assert reply["event"] == "error" and reply["data"]["code"] == code, (frame, reply)
    for ws in sockets:  # still perfectly usable
        await ws.send_json({"event": "chat:join", "data": {"roomId": 1}})
        assert (await next_frame(ws))["event"] == "chat:joined"
    assert hub.stats() == {"sockets": 3, "users": 3, "rooms": 1, "pending": 0}
    # Huge frames close the socket with 1009; frames before authentication close it with 4401.
    for _ in range(5):
        ws = await connect(app_client, people[0])
        await ws.send_str("[" + "0," * 20_000 + "0]")
        assert await close_code(ws) == 1009
    for frame in ("{", "[]", '{"event": "chat:join", "data": {"roomId": 1}}', "x" * 20_000):
        ws = await app_client.ws_connect("/ws")
        await ws.send_str(frame)
        assert await close_code(ws) in (4401, 1009)
    for ws in sockets:
        await ws.close()
    await eventually(lambda: hub.stats() == {"sockets": 0, "users": 0, "rooms": 0, "pending": 0})
