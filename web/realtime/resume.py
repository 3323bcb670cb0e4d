"""Resume: the user events a reconnecting client missed, read back from the outbox.

The outbox already holds every user event with its id, indexed by (target, target_id, id), so it
is the per-user history: written once per event by the transaction that caused it, whatever the
number of web instances, and nothing to rebuild when Redis is lost. A replay is bounded by
``WS_HISTORY_LIMIT``; a client further behind than that, or behind rows the outbox no longer
holds, gets ``sync:refetch`` and reloads its state over REST.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select

from common.models.outbox import OutboxEvent
from common.sql import compile_query
from web.ids import MAX_ID
from web.realtime import protocol


def _history(*hidden: str) -> Any:
    return compile_query(
        select(OutboxEvent.id, OutboxEvent.event, OutboxEvent.data)
        .where(
            OutboxEvent.target == "user",
            OutboxEvent.target_id == bindparam("user_id"),
            OutboxEvent.id > bindparam("since"),
            *(OutboxEvent.event != name for name in sorted(hidden)),
        )
        .order_by(OutboxEvent.id)
        .limit(bindparam("limit"))
    )


_HISTORY = _history(*protocol.INTERNAL_EVENTS)
_MEMBER_HISTORY = _history(*protocol.INTERNAL_EVENTS, *protocol.ADMIN_EVENTS)
_BOUNDS = compile_query(
    select(func.min(OutboxEvent.id).label("low"), func.max(OutboxEvent.id).label("high"))
)


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


async def missed_events(db: Any, *, user_id: int, since: int, limit: int,
                        admin: bool) -> Replay:
    """The user's events after ``since``, in id order, or the refetch instruction; the events
    only admins hear only when ``admin`` (the socket's token is an admin's, checked current)."""
    bounds = await db.fetch_one(_BOUNDS)
    low, high = (bounds or {}).get("low"), (bounds or {}).get("high")
    last = high or 0
    # An unusable id, one from the future (another database), or one older than the outbox's
    # oldest row (history cleaned up): the replay cannot be trusted to be complete.
    if since < 0 or since > last or (low is not None and since < low - 1):
        return Replay(refetch={"reason": "unknown_since", "lastId": last})
    rows = await db.fetch_all(_HISTORY if admin else _MEMBER_HISTORY,
                              {"user_id": user_id, "since": since, "limit": limit + 1})
    if len(rows) > limit:
        return Replay(refetch={"reason": "history_exceeded", "lastId": last})
    return Replay(frames=[(r["id"], protocol.encode(r["event"], r["data"], r["id"])) for r in rows])
