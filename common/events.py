"""The outbox: an event commits with the change that caused it and is published after commit.

1. ``emit`` (or ``emit_many``, or ``adopt_emitted`` for rows a statement inserted itself) writes
   the event row in the caller's transaction and registers it as an after-commit effect.
2. After the commit, the unit of work (``common/uow.py``) sends them on Redis pub/sub
   (``publish``) and marks them published (``mark_published``).
3. ``sweep_unpublished`` (a beat task) publishes what a process that died between commit and
   publish, or a Redis outage, left behind. Subscribers drop duplicates by event id.
4. ``purge_published`` (a beat task) deletes the oldest rows once they are published and past
   ``OUTBOX_RETENTION_DAYS``: the outbox is also the history a reconnecting socket resumes from
   (web/realtime/resume.py), which asks a client behind the oldest row left to refetch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from common.effects import after_commit
from common.models.outbox import OutboxEvent
from common.tracing import current_trace_id

log = logging.getLogger(__name__)
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


def _described(event: str) -> None:
    # Imported here: the catalog imports the services' shapes, and they import this module.
    from common.event_catalog import known

    known(event)


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
    _described(event)
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
    after_commit(session).events.append(emitted)
    return emitted


def emit_many(session: Session, events: Sequence[tuple[str, dict[str, Any], int]]) -> None:
    """``emit`` for many ``(event, data, user_id)`` at once: one round trip (batch paths)."""
    if not events:
        return
    for name in {ev for ev, _, _ in events}:
        _described(name)
    trace_id = current_trace_id()
    rows = [
        {"target": "user", "target_id": uid, "event": ev, "data": data, "trace_id": trace_id}
        for ev, data, uid in events
    ]
    ids = session.execute(
        insert(_outbox).returning(_outbox.c.id, sort_by_parameter_order=True), rows
    ).scalars().all()
    after_commit(session).events.extend(
        Event(event_id, "user", uid, ev, data, trace_id)
        for event_id, (ev, data, uid) in zip(ids, events, strict=True))


def adopt_emitted(session: Session, rows: Iterable[Any]) -> None:
    """Publish after commit the outbox rows that SQL inserted in this transaction (batch paths
    that write their events in the statement that makes the change). ``rows`` carry ``id,
    target, target_id, event, data, trace_id``."""
    after_commit(session).events.extend(_event(r) for r in rows)


def _event(row: Any) -> Event:
    return Event(row.id, row.target, row.target_id, row.event, row.data, row.trace_id)


# Every message of ARGV on the channel KEYS[1], in order: one command however many events (a
# batch of approvals publishes a thousand, and a pipeline of as many commands cost the batch more
# client time than its statement).
_PUBLISH = "for i = 1, #ARGV do redis.call('publish', KEYS[1], ARGV[i]) end"


def publish(client: redis.Redis, channel: str, events: Sequence[Event]) -> None:
    """Send events on pub/sub in one round trip (raises on a Redis failure)."""
    if events:
        client.register_script(_PUBLISH)(keys=[channel], args=[e.wire() for e in events])


_MARK = text(
    "UPDATE outbox SET published_at = now() "
    "WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL"
)


def mark_published(session: Session, ids: Iterable[int]) -> None:
    """Tell the sweep these went out (call inside a transaction). The ids travel as one array
    parameter: a batch's thousand ids as a thousand parameters cost more than the update."""
    ids = list(ids)
    if ids:
        session.execute(_MARK, {"ids": ids})


# Only ever the head of the table, by id: the rows a batch looks at are the oldest ones above the
# last batch's, and it deletes those before the first it must keep (unpublished, or published
# within the retention: a resume replays events published after its ``since`` event, so an
# event's age for the purge is that of its publication). What is left is then every row from
# the smallest id on, which is what the resume's "behind the oldest row" test relies on
# (web/realtime/resume.py reads it again after the history): a purge that skipped one kept row
# would leave a gap a resume could not see.
# - The newest row is always kept: an empty outbox would tell a client that missed nothing that
#   its ``since`` is unknown.
# - An id is taken at insert, so a row still uncommitted below the head would belong to a
#   transaction open for the whole retention. None of ours lives that long (each is a request or
#   a task), but a forgotten session might: no purge runs while a transaction older than the
#   retention is open on this database (of the sessions this role may see: its own).
_PURGE = text("""
    WITH head AS (
        SELECT id, coalesce(published_at < now() - make_interval(days => :days), false) AS done
        FROM outbox WHERE id > :after
          AND id < (SELECT max(id) FROM outbox)
          AND NOT EXISTS (SELECT FROM pg_stat_activity
                          WHERE datname = current_database() AND backend_type = 'client backend'
                            AND xact_start < now() - make_interval(days => :days))
        ORDER BY id LIMIT :batch
    ), kept AS (
        SELECT min(id) AS first FROM head WHERE NOT done
    )
    DELETE FROM outbox USING head, kept
    WHERE outbox.id = head.id AND (kept.first IS NULL OR head.id < kept.first)
    RETURNING outbox.id
""")


@dataclass(frozen=True, slots=True)
class Purged:
    count: int
    last: int  # the highest id deleted (the next batch starts above it), or ``after`` when none


def purge_published(session: Session, *, days: int, batch: int = 1000, after: int = 0) -> Purged:
    """Delete up to ``batch`` of the oldest outbox rows above ``after`` that were published
    more than ``days`` ago, stopping at the first that was not. Call once per transaction."""
    ids = session.execute(_PURGE, {"days": days, "batch": batch, "after": after}).scalars().all()
    return Purged(len(ids), max(ids, default=after))


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
    events = [_event(r) for r in rows]
    publish(client, channel, events)
    mark_published(session, [e.id for e in events])
    return len(events)
