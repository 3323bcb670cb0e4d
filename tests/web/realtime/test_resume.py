"""Resume: a client that reconnects with ``since`` gets what it missed once, in order; a gap
beyond the history gets ``sync:refetch``."""

from __future__ import annotations

from sqlalchemy import text

from common.security.tokens import issue_access_token
from tests.web.realtime.conftest import Someone, connect, next_frame


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
    from sqlalchemy.orm import Session

    from common.events import purge_published

    me = someone()
    old = publish("balance:updated", {}, user_id=me.id)
    publish("balance:updated", {}, user_id=me.id)
    kept = publish("balance:updated", {}, user_id=me.id)
    with committed.begin() as conn:  # the rows before ``kept`` are past retention
        conn.execute(text("UPDATE outbox SET created_at = now() - interval '31 days', "
                          "published_at = now() - interval '31 days' WHERE id < :k"), {"k": kept})
    with Session(committed) as session, session.begin():  # the beat's retention purge
        assert purge_published(session, days=30).count >= 2
    ws = await connect(app_client, me, since=str(old))
    assert (await next_frame(ws))["event"] == "sync:refetch"
    await ws.close()


def _age(committed, ids: list[int], days: int) -> None:  # type: ignore[no-untyped-def]
    """These events were created and published ``days`` ago."""
    with committed.begin() as conn:
        conn.execute(text("UPDATE outbox SET created_at = now() - make_interval(days => :d), "
                          "published_at = now() - make_interval(days => :d) "
                          "WHERE id = ANY(:ids)"), {"d": days, "ids": ids})


async def test_a_since_near_the_end_of_the_retention_asks_for_a_refetch(app_client, someone, publish, committed) -> None:  # type: ignore[no-untyped-def]
    """The ``since`` event is still held but about to be purged: an event published after it
    but older (it went out late, after a Redis outage) may be gone already, and the look-back
    that would replay it cannot tell. So the client refetches, whatever the rows left."""
    import datetime as dt

    from web.keys import DB
    from web.realtime.resume import missed_events

    me = someone()
    late = publish("balance:updated", {"n": 0}, user_id=me.id)  # went out after ``since``
    since = publish("balance:updated", {"n": 1}, user_id=me.id)
    newest = publish("balance:updated", {"n": 2}, user_id=me.id)
    _age(committed, [late, since], 30)
    db = app_client.server.app[DB]
    replay = await missed_events(db, user_id=me.id, since=since, limit=100, admin=False,
                                 retention=dt.timedelta(days=30))
    assert replay.refetch == {"reason": "unknown_since", "lastId": newest}
    inside = await missed_events(db, user_id=me.id, since=since, limit=100, admin=False,
                                 retention=dt.timedelta(days=31))
    assert inside.refetch is None and inside.ids == {late, newest}  # the look-back has it


async def test_a_purge_between_the_bounds_and_the_history_asks_for_a_refetch(app_client, someone, publish, committed) -> None:  # type: ignore[no-untyped-def]
    """The resume checked ``since`` (held, inside the retention), then its history read waited
    longer than the look-back (a stall) while the purge deleted ``since`` and events after it
    (modelled by a purge whose retention is a day shorter): the events it deleted are not in
    the replay, so the client must be told to refetch rather than given the rest as complete."""
    import datetime as dt

    from sqlalchemy.orm import Session

    from common.events import purge_published
    from web.keys import DB
    from web.realtime.resume import missed_events

    me = someone()
    since = publish("balance:updated", {"n": 0}, user_id=me.id)
    missed = publish("balance:updated", {"n": 1}, user_id=me.id)  # then purged
    newest = publish("balance:updated", {"n": 2}, user_id=me.id)
    _age(committed, [since, missed], 29)
    db = app_client.server.app[DB]

    class PurgeBeforeTheHistory:
        fetch_one = db.fetch_one

        async def fetch_all(self, query, params=None):  # type: ignore[no-untyped-def]
            with Session(committed) as session, session.begin():
                assert purge_published(session, days=28).count == 2
            return await db.fetch_all(query, params)

    replay = await missed_events(PurgeBeforeTheHistory(), user_id=me.id, since=since, limit=100,
                                 admin=False, retention=dt.timedelta(days=30))
    assert replay.refetch == {"reason": "unknown_since", "lastId": newest}


async def test_a_demoted_admin_is_not_replayed_what_only_admins_hear(app_client, someone, publish, sync_ctx, ws_settings) -> None:  # type: ignore[no-untyped-def]
    # risk:flagged names other members and their scores; the outbox keeps it under the admin's
    # id, so a resume after a demotion must not hand it to the member they now are.
    was_admin = someone(role="admin")
    start = publish("balance:updated", {"n": 0}, user_id=was_admin.id)
    publish("risk:flagged", {"userId": 1, "name": "Another Member", "score": 60.0},
            user_id=was_admin.id)
    with sync_ctx.transaction() as session:
        session.execute(text("UPDATE users SET role = 'user' WHERE id = :id"), {"id": was_admin.id})
    own = publish("balance:updated", {"n": 1}, user_id=was_admin.id)
    member = Someone(was_admin.id, issue_access_token(
        ws_settings, user_id=was_admin.id, email="demoted@example.com", role="user"), was_admin.name)
    ws = await connect(app_client, member, since=str(start))
    assert (await next_frame(ws))["id"] == own
    await ws.send_json({"event": "ping"})
    assert (await next_frame(ws))["event"] == "pong"  # nothing else was replayed
    await ws.close()


async def test_an_admin_is_replayed_what_admins_hear(app_client, someone, publish) -> None:  # type: ignore[no-untyped-def]
    admin = someone(role="admin")
    start = publish("balance:updated", {"n": 0}, user_id=admin.id)
    flagged = publish("risk:flagged", {"userId": 1, "name": "Another Member", "score": 60.0},
                      user_id=admin.id)
    ws = await connect(app_client, admin, since=str(start))
    assert (await next_frame(ws))["id"] == flagged
    await ws.close()
