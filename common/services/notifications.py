"""Stored notifications; each one is also pushed as ``notification:new``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy.orm import Session

from common.events import emit_many
from common.models.notifications import Notification
from common.sql import affected
from common.wire import Shape, jsonable

_n = Notification.__table__


@dataclass(frozen=True, slots=True)
class NewNotification:
    user_id: int
    type: str
    title: str
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class NotificationOut(Shape):
    id: int
    type: str
    title: str
    body: str
    data: dict[str, Any]
    read: bool
    readAt: dt.datetime | None
    createdAt: dt.datetime


def notification_json(row: Any) -> dict[str, Any]:
    """A stored notification as the API and ``notification:new`` carry it (timestamps written)."""
    return jsonable(NotificationOut.of(row, read=row["read_at"] is not None))


# Inside SQL (the approval statement stores and announces its notifications in one statement):
# the same fields from the same columns, ``read`` from ``read_at``, timestamps as ``iso`` writes
# them (UTC, milliseconds truncated, e.g. 2024-03-01T09:30:00.123Z).
_SQL_INSTANT = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_INSTANTS = (dt.datetime, dt.datetime | None)


def notification_json_sql(alias: str) -> str:
    """``notification_json`` as a SQL ``jsonb`` expression over the ``notifications`` columns of
    ``alias`` (a table alias or a CTE returning them)."""
    pairs = []
    for name, column in NotificationOut.columns():
        if name == "read":
            value = f"{alias}.read_at IS NOT NULL"
        elif NotificationOut.model_fields[name].annotation in _INSTANTS:
            value = _SQL_INSTANT.format(f"{alias}.{column}")
        else:
            value = f"{alias}.{column}"
        pairs.append(f"'{name}', {value}")
    return f"jsonb_build_object({', '.join(pairs)})"


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
    return affected(result)
