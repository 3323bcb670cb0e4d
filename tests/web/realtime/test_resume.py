"""Resume: a client that reconnects with ``since`` gets what it missed once, in order; a gap
beyond the history gets ``sync:refetch``."""

from __future__ import annotations

from tests.web.realtime.conftest import connect, next_frame


async def test_missed_events_arrive_once_and_in_order(app_client, someone, publish) -> None:
    me, other = someone(), someone()
    ws = await connect(app_client, me)
    first = publish("balance:updated", {"n": 0}, user_id=me.id)
    assert (await next_frame(ws))["id"] == first
    await ws.close()
    missed = [publish("balance:updated", {"n": n}, user_id=me.id) for n in range(1, 6)]
    publish("balance:updated", {"n": 99}, user_id=other.id)
    publish("offer:new", {"offer": {}, "category": "x"})  # broadcasts are not replayed
    ws = await app_client.ws_connect("/ws")
    await ws.send_json({"event": "auth", "data": {"token": me.token, "since": str(first)}})
    assert (await next_frame(ws))["event"] == "ready"
    replayed = [await next_frame(ws) for _ in missed]
    assert [f["id"] for f in replayed] == missed
    assert [f["data"]["n"] for f in replayed] == [1, 2, 3, 4, 5]
    live = publish("payment:status", {"paymentId": 1, "status": "paid", "amount": 5}, user_id=me.id)
    assert (await next_frame(ws))["id"] == live
    await ws.send_json({"event": "ping"})
    assert (await next_frame(ws))["event"] == "pong"  # nothing twice in between
    await ws.close()


async def test_since_on_the_url_and_nothing_missed(app_client, someone, publish) -> None:
    me = someone()
    last = publish("notification:new", {"id": 1}, user_id=me.id)
    ws = await connect(app_client, me, since=str(last))
    await ws.send_json({"event": "ping"})
    assert (await next_frame(ws))["event"] == "pong"
    await ws.close()


async def test_gap_beyond_the_history_gets_refetch(app_client, someone, publish, ws_settings) -> None:
    me = someone()
    since = publish("balance:updated", {"n": 0}, user_id=me.id)
    ids = [publish("balance:updated", {"n": n}, user_id=me.id)
           for n in range(ws_settings.ws_history_limit + 1)]
    ws = await connect(app_client, me, since=str(since))
    refetch = await next_frame(ws)
    assert refetch == {"event": "sync:refetch",
                       "data": {"reason": "history_exceeded", "lastId": ids[-1]}}
    live = publish("balance:updated", {"n": "live"}, user_id=me.id)
    assert (await next_frame(ws))["id"] == live
    await ws.close()


async def test_unknown_since_gets_refetch(app_client, someone, publish) -> None:
    me = someone()
    last = publish("balance:updated", {}, user_id=me.id)
    for since in (str(last + 1000), "-3", "abc"):
        ws = await connect(app_client, me, since=since)
        frame = await next_frame(ws)
        assert frame["event"] == "sync:refetch" and frame["data"]["reason"] == "unknown_since"
        await ws.close()


async def test_history_cleaned_up_gets_refetch(app_client, someone, publish, committed) -> None:
    from sqlalchemy import text

    me = someone()
    old = publish("balance:updated", {}, user_id=me.id)
    publish("balance:updated", {}, user_id=me.id)
    kept = publish("balance:updated", {}, user_id=me.id)
    with committed.begin() as conn:  # the clean-up chore removed the oldest rows
        conn.execute(text("DELETE FROM outbox WHERE id < :k"), {"k": kept})
    ws = await connect(app_client, me, since=str(old))
    assert (await next_frame(ws))["event"] == "sync:refetch"
    await ws.close()
