"""The outbox's retention: published events past ``OUTBOX_RETENTION_DAYS`` are purged from the
head of the table only, so what is left is every event from the oldest id on (the resume's
history, web/realtime/resume.py), and nothing unpublished is ever purged."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from common.events import Purged, purge_published
from common.models import OutboxEvent

OLD = dt.timedelta(days=31)


def _event(session: Session, *, age: dt.timedelta = dt.timedelta(0), published: bool = True) -> int:
    made = session.execute(select(func.now())).scalar_one() - age
    return session.execute(insert(OutboxEvent).values(
        target="user", target_id=1, event="balance:updated", data={}, created_at=made,
        published_at=made if published else None,
    ).returning(OutboxEvent.id)).scalar_one()


def _ids(session: Session) -> list[int]:
    return list(session.execute(select(OutboxEvent.id).order_by(OutboxEvent.id)).scalars())


def test_only_the_head_is_purged_and_never_past_an_unpublished_row(session: Session) -> None:
    doomed = [_event(session, age=OLD) for _ in range(3)]
    waiting = _event(session, age=OLD, published=False)  # Redis was away: the sweep still owes it
    behind = _event(session, age=OLD)
    fresh = _event(session)
    # Bounded batches: a run that stops after any batch leaves whole batches done.
    assert [purge_published(session, days=30, batch=2).count for _ in range(3)] == [2, 1, 0]
    assert _ids(session) == [waiting, behind, fresh] and not set(doomed) & set(_ids(session))
    session.execute(update(OutboxEvent).where(OutboxEvent.id == waiting)
                    .values(published_at=func.now() - OLD))
    assert purge_published(session, days=30).count == 2
    assert _ids(session) == [fresh]


def test_a_row_inside_retention_keeps_every_later_one(session: Session) -> None:
    """A long transaction takes its id early and is stamped with its start: an older row can sit
    above a newer one. The purge stops at the newer one rather than leave a gap behind it."""
    first = _event(session, age=OLD)
    recent = _event(session, age=dt.timedelta(days=29))
    old_above = _event(session, age=OLD)
    assert purge_published(session, days=30).count == 1
    assert _ids(session) == [recent, old_above] and first not in _ids(session)


def test_an_empty_outbox_purges_nothing(session: Session) -> None:
    assert purge_published(session, days=30).count == 0


def test_the_newest_row_is_kept_however_old(session: Session) -> None:
    """An empty outbox would tell a client that missed nothing that its ``since`` is unknown."""
    ids = [_event(session, age=OLD) for _ in range(3)]
    assert purge_published(session, days=30) == Purged(2, ids[1])
    assert _ids(session) == [ids[2]]


def test_a_batch_starts_above_the_last_one(session: Session) -> None:
    ids = [_event(session, age=OLD) for _ in range(4)]
    assert purge_published(session, days=30, batch=1, after=ids[1]) == Purged(1, ids[2])
    assert _ids(session) == [ids[0], ids[1], ids[3]]


@pytest.mark.committed
def test_no_purge_while_a_transaction_older_than_the_retention_is_open(committed) -> None:  # type: ignore[no-untyped-def]
    """Such a transaction may hold an outbox row below the head, uncommitted: purging past it
    would leave a gap behind it. (An hour stands for the retention here.)"""
    with Session(committed) as session, session.begin():
        old = [_event(session, age=OLD) for _ in range(2)]
    with Session(committed) as session, session.begin():
        session.execute(text("UPDATE outbox SET created_at = now() - interval '40 days', "
                             "published_at = now() - interval '40 days'"))
    forgotten = committed.connect()
    forgotten.begin()
    forgotten.execute(text("SELECT 1"))  # a transaction is open from here on
    try:
        with Session(committed) as session, session.begin():
            # The clock of the purge's "retention" is days; an open transaction seconds old
            # stands for one as old as the retention by asking for zero days.
            assert purge_published(session, days=0).count == 0
    finally:
        forgotten.rollback()
        forgotten.close()
    with Session(committed) as session, session.begin():
        assert purge_published(session, days=0).count == 1
        assert _ids(session) == [old[1]]


@pytest.mark.committed
def test_the_beat_task_purges_in_committed_batches(committed) -> None:  # type: ignore[no-untyped-def]
    from workers.schedule import SCHEDULE
    from workers.tasks.events import purge_outbox

    with Session(committed) as session, session.begin():
        for _ in range(3):
            _event(session, age=OLD)
        kept = _event(session, age=dt.timedelta(days=1))
    assert SCHEDULE["events.purge_outbox"]["task"] == "events.purge_outbox"
    assert purge_outbox(batch=2) == 3  # two committed batches
    assert purge_outbox() == 0  # restartable: nothing left to do
    with committed.connect() as conn:
        assert conn.execute(text("SELECT id FROM outbox")).scalars().all() == [kept]


def test_an_event_published_late_is_kept_for_the_retention_after_its_publication(session: Session) -> None:
    """Written before a Redis outage, published when it ended: a socket that resumes from an
    event of that time replays it (its look-back), so its age counts from its publication."""
    late = _event(session, age=OLD, published=False)
    session.execute(update(OutboxEvent).where(OutboxEvent.id == late)
                    .values(published_at=func.now() - dt.timedelta(days=1)))
    newest = _event(session)
    assert purge_published(session, days=30).count == 0
    assert _ids(session) == [late, newest]
