"""The outbox: an event commits with the change that caused it and is published after commit.

1. ``emit`` inserts the event row in the caller's transaction and remembers it on the session.
2. After the commit, the caller hands ``committed_events(session)`` to a publisher, which sends
   each on Redis pub/sub and marks it published.
3. ``sweep_unpublished`` (a beat task) publishes what a process that died between commit and
   publish, or a Redis outage, left behind. Subscribers drop duplicates by event id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import redis.asyncio as aredis
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.orm import Session

from common.models.outbox import OutboxEvent
from common.tracing import current_trace_id

log = logging.getLogger(__name__)
_PENDING = "savebucks.outbox"
_outbox = OutboxEvent.__table__


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    target: str
    target_id: int | None
    event: str
    data: dict[str, Any]
    trace_id: str | None

    def wire(self) -> bytes:
        """The pub/sub message every web instance routes to sockets."""
        return orjson.dumps(
            {
                "id": self.id,
                "target": self.target,
                "targetId": self.target_id,
                "event": self.event,
                "data": self.data,
                "traceId": self.trace_id,
            }
        )


def emit(
    session: Session,
    *,
    event: str,
    data: dict[str, Any],
    user_id: int | None = None,
    room_id: int | None = None,
) -> Event:
    """Write an event in the caller's transaction; it is published only if that commits.

    Exactly one of ``user_id`` / ``room_id`` names the audience; with neither, it goes to everyone.
    ``data`` must be JSON-ready (money already turned into numbers by the caller).
    """
    if user_id is not None and room_id is not None:
        raise ValueError("an event goes to a user or a room, not both")
    target, target_id = ("user", user_id) if user_id is not None else (
        ("room", room_id) if room_id is not None else ("all", None)
    )
    trace_id = current_trace_id()
    event_id = session.execute(
        insert(_outbox)
        .values(target=target, target_id=target_id, event=event, data=data, trace_id=trace_id)
        .returning(_outbox.c.id)
    ).scalar_one()
    emitted = Event(event_id, target, target_id, event, data, trace_id)
    session.info.setdefault(_PENDING, []).append(emitted)
    return emitted


def emit_many(session: Session, events: Sequence[tuple[str, dict[str, Any], int]]) -> None:
    """``emit`` for many ``(event, data, user_id)`` at once: one round trip (batch paths)."""
    if not events:
        return
    trace_id = current_trace_id()
    rows = [
        {"target": "user", "target_id": uid, "event": ev, "data": data, "trace_id": trace_id}
        for ev, data, uid in events
    ]
    ids = session.execute(
        insert(_outbox).returning(_outbox.c.id, sort_by_parameter_order=True), rows
    ).scalars().all()
    pending = session.info.setdefault(_PENDING, [])
    for event_id, (ev, data, uid) in zip(ids, events, strict=True):
        pending.append(Event(event_id, "user", uid, ev, data, trace_id))


def adopt_emitted(session: Session, rows: Iterable[Any]) -> None:
    """Publish after commit the outbox rows that SQL inserted in this transaction (batch paths
    that write their events in the statement that makes the change). ``rows`` carry ``id,
    target, target_id, event, data, trace_id``."""
    pending = session.info.setdefault(_PENDING, [])
    pending.extend(
        Event(r.id, r.target, r.target_id, r.event, r.data, r.trace_id) for r in rows
    )


def committed_events(session: Session) -> list[Event]:
    """Take the events emitted in the transaction that just committed (call after commit)."""
    return session.info.pop(_PENDING, [])


def discard_events(session: Session) -> None:
    """Forget events of a transaction that rolled back: they were never committed."""
    session.info.pop(_PENDING, None)


def emitted_count(session: Session) -> int:
    """How many events this transaction has emitted so far (see ``discard_events_after``)."""
    return len(session.info.get(_PENDING, ()))


def discard_events_after(session: Session, count: int) -> None:
    """Forget the events emitted since ``emitted_count`` said ``count``: a savepoint rolled
    them back, and the rest of the transaction goes on."""
    pending = session.info.get(_PENDING)
    if pending is not None:
        del pending[count:]


def _mark_published(conn: Connection, ids: Sequence[int]) -> None:
    conn.execute(
        update(_outbox)
        .where(_outbox.c.id.in_(ids), _outbox.c.published_at.is_(None))
        .values(published_at=func.now())
    )


def publish_events(
    events: Sequence[Event], *, client: redis.Redis, channel: str, session: Session
) -> bool:
    """Publish committed events and mark them; on a Redis failure leave them to the sweep."""
    if not events:
        return True
    try:
        with client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(channel, event.wire())
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("events left for the outbox sweep", extra={"error": str(exc), "count": len(events)})
        return False
    with session.begin():
        _mark_published(session.connection(), [e.id for e in events])
    return True


async def publish_events_async(
    events: Sequence[Event], *, client: aredis.Redis, channel: str
) -> list[int]:
    """The web's post-commit publish; returns the ids sent (marking them is the caller's job)."""
    if not events:
        return []
    try:
        async with client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(channel, event.wire())
            await pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("events left for the outbox sweep", extra={"error": str(exc), "count": len(events)})
        return []
    return [e.id for e in events]


def mark_published(session: Session, ids: Iterable[int]) -> None:
    ids = list(ids)
    if ids:
        _mark_published(session.connection(), ids)


def sweep_unpublished(
    session: Session,
    *,
    client: redis.Redis,
    channel: str,
    older_than: dt.timedelta = dt.timedelta(seconds=5),
    batch: int = 500,
) -> int:
    """Publish outbox rows nobody published, oldest first. Call inside a transaction.

    ``older_than`` leaves fresh rows to the process that committed them, which publishes them a
    moment later; rows locked by a concurrent sweep are skipped.
    """
    rows = session.execute(
        select(_outbox)
        .where(
            _outbox.c.published_at.is_(None),
            _outbox.c.created_at <= func.now() - older_than,
        )
        .order_by(_outbox.c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0
    events = [Event(r.id, r.target, r.target_id, r.event, r.data, r.trace_id) for r in rows]
    with client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.publish(channel, event.wire())
        pipe.execute()
    _mark_published(session.connection(), [e.id for e in events])
    return len(events)
