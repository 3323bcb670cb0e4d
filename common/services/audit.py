"""The audit log: who did what to what, from where, under which trace id. Rows are only added."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from common.models import AuditLog
from common.tracing import current_trace_id


def record_audit(
    session: Session,
    *,
    action: str,
    actor_id: int | None,
    target_type: str | None = None,
    target_id: object = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
    trace_id: str | None = None,
) -> None:
    """Add one row in the caller's transaction; ``trace_id`` defaults to the current one."""
    session.execute(
        insert(AuditLog).values(
            action=action,
            actor_id=actor_id,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            before=before,
            after=after,
            ip=ip,
            trace_id=trace_id or current_trace_id(),
        )
    )
