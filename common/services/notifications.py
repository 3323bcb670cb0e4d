"""Stored notifications; each one is also pushed as ``notification:new``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy.orm import Session

from common.events import emit_many
from common.models.notifications import Notification

_n = Notification.__table__


@dataclass(frozen=True, slots=True)
class NewNotification:
    user_id: int
    type: str
    title: str
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)


# The API's notification, ``{id, type, title, body, data, read, readAt, createdAt}``, defined once:
# each key, the column it comes from and how it is shown. ``notification_json`` (a row in Python)
# and ``notification_json_sql`` (rows inside a statement: the approval's) are both built from it.
_SHAPE: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "as_is"), ("type", "type", "as_is"), ("title", "title", "as_is"),
    ("body", "body", "as_is"), ("data", "data", "as_is"), ("read", "read_at", "is_set"),
    ("readAt", "read_at", "instant"), ("createdAt", "created_at", "instant"),
)
_IN_PYTHON: dict[str, Callable[[Any], Any]] = {
    "as_is": lambda value: value,
    "is_set": lambda value: value is not None,
    "instant": lambda value: None if value is None else _iso(value),
}
# An instant as ISO 8601 in UTC with milliseconds (truncated, as ``_iso``), e.g. 2024-03-01T09:30:00.123Z.
_IN_SQL = {
    "as_is": "{}",
    "is_set": "{} IS NOT NULL",
    "instant": "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
}


def notification_json(row: Any) -> dict[str, Any]:
    """The API's notification of a ``notifications`` row (a mapping)."""
    return {key: _IN_PYTHON[how](row[column]) for key, column, how in _SHAPE}


def notification_json_sql(alias: str) -> str:
    """The same as a SQL ``jsonb`` expression over the ``notifications`` columns of ``alias``
    (a table alias or a CTE returning them)."""
    pairs = (f"'{key}', " + _IN_SQL[how].format(f"{alias}.{column}") for key, column, how in _SHAPE)
    return f"jsonb_build_object({', '.join(pairs)})"


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notify(session: Session, items: Sequence[NewNotification]) -> list[int]:
    """Store notifications and emit ``notification:new`` for each, in the caller's transaction."""
    if not items:
        return []
    rows = session.execute(
        insert(_n).returning(*_n.c, sort_by_parameter_order=True),
        [
            {"user_id": n.user_id, "type": n.type, "title": n.title, "body": n.body, "data": n.data}
            for n in items
        ],
    ).mappings().all()
    emit_many(session, [("notification:new", notification_json(r), r["user_id"]) for r in rows])
    return [r["id"] for r in rows]


def mark_read(session: Session, *, user_id: int, notification_id: int) -> bool:
    """Mark one of the user's notifications read; False when it is not theirs or unknown."""
    found = session.execute(
        update(_n)
        .where(_n.c.id == notification_id, _n.c.user_id == user_id)
        .values(read_at=func.coalesce(_n.c.read_at, func.now()))
        .returning(_n.c.id)
    ).first()
    return found is not None


def mark_all_read(session: Session, *, user_id: int) -> int:
    result = session.execute(
        update(_n).where(_n.c.user_id == user_id, _n.c.read_at.is_(None)).values(read_at=func.now())
    )
    return result.rowcount
