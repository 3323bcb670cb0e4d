"""Resume when events are published out of id order: an event whose id is below the client's
``since`` but that reached pub/sub after the ``since`` event (its transaction committed later, or
the outbox sweep published it after Redis came back) is replayed, not lost."""

from __future__ import annotations

import datetime as dt

from common.events import emit, sweep_unpublished
from common.redis import events_channel
from tests.web.realtime.conftest import connect, next_frame


async def _resume(app_client, me, since: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """The user events a resume from ``since`` sends before a ping's answer."""
    ws = await connect(app_client, me, since=str(since))
    await ws.send_json({"event": "ping"})
    frames = []
    while (frame := await next_frame(ws))["event"] != "pong":
        frames.append(frame)
    await ws.close()
    return frames


async def test_event_committed_after_a_higher_one_is_replayed(app_client, someone, publish,
                                                               sync_ctx) -> None:
    me = someone()
    ws = await connect(app_client, me)
    # A takes its id first, and its transaction stays open while B commits and is delivered.
    with sync_ctx.sessions() as slow:
        slow.begin()
        a = emit(slow, event="balance:updated", data={"n": "a"}, user_id=me.id).id
        b = publish("balance:updated", {"n": "b"}, user_id=me.id)
        assert a < b
        assert (await next_frame(ws))["id"] == b
        await ws.close()  # the socket drops before A commits
        sync_ctx.unit.commit(slow)  # A commits and is published with no socket to receive it
    frames = await _resume(app_client, me, since=b)
    assert [f["id"] for f in frames] == [a]
    assert frames[0]["data"] == {"n": "a"}


async def test_event_swept_after_a_higher_one_is_replayed(app_client, someone, publish,
                                                          sync_ctx, settings) -> None:
    me = someone()
    # A is committed but never published (Redis was away): it waits for the sweep. A plain
    # commit runs no after-commit effects.
    with sync_ctx.sessions() as session, session.begin():
        a = emit(session, event="payment:status", data={"n": "a"}, user_id=me.id).id
    ws = await connect(app_client, me)
    b = publish("balance:updated", {"n": "b"}, user_id=me.id)
    assert (await next_frame(ws))["id"] == b
    await ws.close()
    with sync_ctx.sessions() as session, session.begin():  # Redis is back: the sweep runs
        swept = sweep_unpublished(session, client=sync_ctx.redis, channel=events_channel(settings),
                                  older_than=dt.timedelta(0))
    assert swept >= 1
    frames = await _resume(app_client, me, since=b)
    assert [f["id"] for f in frames] == [a]


async def test_event_still_unpublished_is_replayed(app_client, someone, publish,
                                                   sync_ctx) -> None:
    me = someone()
    with sync_ctx.sessions() as session, session.begin():  # left to a sweep not run yet
        a = emit(session, event="payment:status", data={"n": "a"}, user_id=me.id).id
    b = publish("balance:updated", {"n": "b"}, user_id=me.id)
    frames = await _resume(app_client, me, since=b)
    assert [f["id"] for f in frames] == [a]
