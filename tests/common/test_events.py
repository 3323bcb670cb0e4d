"""The outbox: committed events reach Redis subscribers, rolled-back ones never do, and the sweep
delivers what a process that died after commit did not publish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext

import orjson
import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from common.config import Settings
from common.events import emit, sweep_unpublished
from common.models import OutboxEvent
from common.redis import events_channel
from common.taskqueue import enqueue
from common.uow import SyncContext, UnitOfWork


@pytest.fixture
def subscriber(redis_sync: redis.Redis, settings: Settings) -> Iterator[redis.client.PubSub]:
    pubsub = redis_sync.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events_channel(settings))
    pubsub.get_message(timeout=1)
    yield pubsub
    pubsub.close()


def _received(pubsub: redis.client.PubSub, count: int, deadline: float = 10.0) -> list[dict]:
    got: list[dict] = []
    end = time.monotonic() + deadline
    while len(got) < count and time.monotonic() < end:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            got.append(orjson.loads(message["data"]))
    return got


def test_committed_event_reaches_a_subscriber(session: Session, redis_sync, subscriber, settings) -> None:
    unit = UnitOfWork(lambda: nullcontext(session), redis_sync, events_channel(settings), enqueue)
    with unit.transaction() as s:
        first = emit(s, event="balance:updated", data={"newBalance": 1.5}, user_id=7)
        second = emit(s, event="offer:new", data={"offer": {}, "category": "games"})
    assert second.id > first.id
    got = _received(subscriber, 2)
    assert [g["id"] for g in got] == [first.id, second.id]
    assert got[0] == {
        "id": first.id, "target": "user", "targetId": 7, "event": "balance:updated",
        "data": {"newBalance": 1.5}, "traceId": None,
    }
    assert got[1]["target"] == "all" and got[1]["targetId"] is None
    published = session.scalars(select(OutboxEvent.published_at).where(OutboxEvent.id == first.id)).one()
    assert published is not None


def test_rolled_back_event_is_never_published(engine: Engine, settings, redis_sync, subscriber, committed) -> None:
    ctx = SyncContext.create(settings, pool_size=1)
    try:
        with pytest.raises(RuntimeError), ctx.transaction() as session:
            emit(session, event="balance:updated", data={}, user_id=1)
            raise RuntimeError("the change failed")
        with ctx.transaction() as session:
            kept = emit(session, event="balance:updated", data={"n": 2}, user_id=1)
    finally:
        ctx.close()
    got = _received(subscriber, 2, deadline=1.5)
    assert [g["id"] for g in got] == [kept.id]
    with Session(engine) as s:
        assert s.scalars(select(OutboxEvent.id)).all() == [kept.id]


def test_sweep_publishes_what_a_dead_process_left(session: Session, redis_sync, subscriber, settings) -> None:
    with session.begin():
        lost = emit(session, event="payment:status", data={"paymentId": 3}, user_id=2)
    # The process "died" here: a plain session's commit publishes nothing, only a unit's does.
    assert _received(subscriber, 1, deadline=0.5) == []
    import datetime as dt

    with session.begin():
        sent = sweep_unpublished(
            session, client=redis_sync, channel=events_channel(settings), older_than=dt.timedelta(0)
        )
    assert sent == 1
    assert [g["id"] for g in _received(subscriber, 1)] == [lost.id]
    with session.begin():
        again = sweep_unpublished(
            session, client=redis_sync, channel=events_channel(settings), older_than=dt.timedelta(0)
        )
    assert again == 0


def test_sweep_task_runs_in_a_real_worker(engine: Engine, settings, subscriber, celery_worker) -> None:
    with Session(engine) as s, s.begin():
        lost = emit(s, event="notification:new", data={"id": 1}, user_id=5)
    enqueue("events.sweep_outbox", 0.0)
    got = _received(subscriber, 1, deadline=20)
    assert [g["id"] for g in got] == [lost.id]


def test_effects_behind_publish_each_commit_in_order_and_wait_for_all(  # type: ignore[no-untyped-def]
        engine: Engine, settings, redis_sync, subscriber, committed) -> None:
    """The beat's loop of batches: each commit's events go out on the effects' own thread, in
    commit order, none of a rolled-back transaction, all published and marked when the block
    ends."""
    ctx = SyncContext.create(settings, pool_size=2)
    kept = []
    try:
        with ctx.unit.effects_behind():
            for n in range(3):
                with ctx.transaction() as session:
                    kept.append(emit(session, event="balance:updated", data={"n": n}, user_id=1))
            with pytest.raises(RuntimeError), ctx.transaction() as session:
                emit(session, event="balance:updated", data={"n": "lost"}, user_id=1)
                raise RuntimeError("the change failed")
        with Session(engine) as s:  # the block waited for every marking
            unmarked = s.scalars(select(OutboxEvent.id).where(OutboxEvent.published_at.is_(None)))
            assert unmarked.all() == []
    finally:
        ctx.close()
    got = _received(subscriber, 4, deadline=1.5)
    assert [g["id"] for g in got] == [e.id for e in kept]
