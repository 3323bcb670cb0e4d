"""Resume: the user events a reconnecting client missed, read back from the outbox.

The outbox already holds every user event with its id, indexed by (target, target_id, id), so it
is the per-user history: written once per event by the transaction that caused it, whatever the
number of web instances, and nothing to rebuild when Redis is lost. A replay is bounded by
``WS_HISTORY_LIMIT``; a client further behind than that, or behind rows the outbox no longer
holds, gets ``sync:refetch`` and reloads its state over REST.

Ids follow insertion, not publication. An outbox id is taken when the row is inserted, but the
event reaches pub/sub after its transaction commits, from whichever process publishes it: a
transaction that took id 118 may commit after 120 was delivered, and the sweep publishes what a
Redis outage left unpublished after newer events went out live. A client that resumes from the
highest id it saw would skip those. So the replay is, besides every event above ``since``, every
older one of the user that may have reached pub/sub after the ``since`` event did:

- still unpublished (the sweep will send it; the socket then skips it as replayed), or
- published at or after the ``since`` event's creation minus ``LOOKBACK``. The ``since`` event
  was created (``created_at`` is its transaction's start) before it was published, and anything
  the client missed was published after the client had it. ``published_at`` is the database's
  ``now()`` of the marking transaction: after the publication on the committing process's path,
  but the sweep's transaction starts just before it publishes, hence the margin (longer than a
  sweep's round trip to Redis, bounded by the Redis client timeouts).

Some of those the client already has: a resume may repeat events below ``since``, and clients
drop what they have by ``id`` (docs/api.md "Resume"). Weighed against this: making ids follow
commit order per user (an advisory lock before the outbox insert) serialises one user's
concurrent credits and still leaves the sweep publishing old ids after new ones; holding live
events back until lower ids are published delays them without bound while Redis is away.

Each part of the query has its index: ``(target, target_id, id)`` above ``since``, the partial
unpublished index, and ``(target_id, published_at)`` for user rows (migration 0016), so a resume
reads the recent rows, not the user's whole history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, Interval, bindparam, func, literal_column, select, union_all

from common.models.outbox import OutboxEvent
from common.sql import compile_query
from web.ids import MAX_ID
from web.realtime import protocol

# Longer than a sweep's transaction takes from its start (its ``published_at``) to the publish.
LOOKBACK = dt.timedelta(seconds=10)
_SINCE: BindParameter[int] = bindparam("since")
# When the ``since`` event was created: nothing the client missed was published before that.
_SINCE_CREATED = (
    select(OutboxEvent.created_at).where(OutboxEvent.id == _SINCE).scalar_subquery()
)
_COLUMNS = (OutboxEvent.id, OutboxEvent.event, OutboxEvent.data)


def _history(*hidden: str) -> Any:
    """The replay statement, leaving out the events named ``hidden``."""
    user_events = (
        # Inline, not a parameter: a generic plan can then use the index for user rows only.
        OutboxEvent.target == literal_column("'user'"),
        OutboxEvent.target_id == bindparam("user_id"),
        *(OutboxEvent.event != name for name in sorted(hidden)),
    )
    return compile_query(
        union_all(
            select(*_COLUMNS).where(*user_events, OutboxEvent.id > _SINCE),
            select(*_COLUMNS).where(*user_events, OutboxEvent.id < _SINCE,
                                    OutboxEvent.published_at.is_(None)),
            select(*_COLUMNS).where(
                *user_events,
                # ``id + 0``: kept off the id index, which would walk the user's whole history;
                # the publication index finds the few recent rows (a generic plan chose the id
                # index).
                OutboxEvent.id + literal_column("0") < _SINCE,
                OutboxEvent.published_at >= _SINCE_CREATED - bindparam("lookback", type_=Interval),
            ),
        )
        .order_by("id")
        .limit(bindparam("limit"))
    )


_HISTORY = _history(*protocol.INTERNAL_EVENTS)
# A member's replay leaves out what only admins hear: a demoted admin keeps those rows in the
# outbox under their id.
_MEMBER_HISTORY = _history(*protocol.INTERNAL_EVENTS, *protocol.ADMIN_EVENTS)
_LOW_HIGH = (func.min(OutboxEvent.id).label("low"), func.max(OutboxEvent.id).label("high"))
_BOUNDS = compile_query(select(*_LOW_HIGH))
# The bounds, and whether the ``since`` event is still held and inside the retention (less the
# look-back): the events that may have gone out after it are then all still held.
_START = compile_query(select(
    *_LOW_HIGH,
    select(OutboxEvent.created_at >= func.now() - bindparam("retention", type_=Interval())
           + bindparam("lookback", type_=Interval()))
    .where(OutboxEvent.id == _SINCE).scalar_subquery().label("since_held"),
))


@dataclass
class Replay:
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    refetch: dict[str, Any] | None = None

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(event_id for event_id, _ in self.frames)


def parse_since(value: object) -> int | None:
    """``since`` as sent (a number or a numeric string); None when absent, -1 when unusable."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return -1
    if isinstance(value, int):
        return value if 0 <= value <= MAX_ID else -1
    # ASCII only: "²".isdigit() is true, and int() refuses it.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return -1


async def missed_events(db: Any, *, user_id: int, since: int, limit: int, admin: bool,
                        retention: dt.timedelta) -> Replay:
    """The user's events after ``since`` and those that may have been published after it (see
    the module's docstring), in id order, or the refetch instruction; the events only admins
    hear only when ``admin`` (the socket's token is an admin's, checked current). ``retention``
    is how long published events are kept (``OUTBOX_RETENTION_DAYS``)."""
    bounds = await db.fetch_one(_START, {"since": since, "retention": retention,
                                         "lookback": LOOKBACK})
    low, high = (bounds or {}).get("low"), (bounds or {}).get("high")
    last = high or 0
    # An unusable id, one from the future (another database), one older than the outbox's
    # oldest row, or an event no longer held or near the retention's end (history cleaned up:
    # the events published after it, which the look-back replays, may be gone): the replay
    # cannot be trusted to be complete. ``since`` 0, the whole history, names no event.
    if (since < 0 or since > last or (low is not None and since < low - 1)
            or (since > 0 and not (bounds or {}).get("since_held"))):
        return Replay(refetch={"reason": "unknown_since", "lastId": last})
    rows = await db.fetch_all(_HISTORY if admin else _MEMBER_HISTORY, {
        "user_id": user_id, "since": since, "lookback": LOOKBACK, "limit": limit + 1,
    })
    if len(rows) > limit:
        return Replay(refetch={"reason": "history_exceeded", "lastId": last})
    # The retention purge (common/events.py) may have deleted rows after ``since`` between the
    # two statements. It only ever deletes from the head, so the oldest row left, read again
    # now, tells: still at most ``since + 1`` and nothing above ``since`` was gone when the
    # history was read.
    if low is not None and since >= low - 1:
        after = await db.fetch_one(_BOUNDS)
        low_now = (after or {}).get("low")
        if low_now is None or since < low_now - 1:
            return Replay(refetch={"reason": "unknown_since", "lastId": last})
    return Replay(frames=[(r["id"], protocol.encode(r["event"], r["data"], r["id"])) for r in rows])
