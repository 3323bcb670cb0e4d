"""Admin: the audit log, newest first, filtered by actor, action, target and time."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field

from common.services.admin_queue import list_audit
from web.auth import require_admin
from web.handlers.admin.base import paged
from web.handlers.admin.schemas import AuditOut
from web.openapi import describe
from web.schemas import PageQuery
from web.validation import parse_query


class AuditQuery(PageQuery):
    actorId: int | None = Field(None, ge=1, le=2**63 - 1)
    action: str | None = Field(None, max_length=64)
    targetType: str | None = Field(None, max_length=32)
    targetId: str | None = Field(None, max_length=64)
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@describe("The audit log, newest first (filters actorId, action, targetType, targetId, since, until)", tags=["admin"], query=AuditQuery, response=AuditOut, list=True)
@require_admin
async def audit_log(request: web.Request) -> web.Response:
    q = parse_query(request, AuditQuery)
    return await paged(request, q, list_audit, AuditOut, actor_id=q.actorId, action=q.action,
                       target_type=q.targetType, target_id=q.targetId, since=q.since,
                       until=q.until)


ROUTES = [("GET", "/admin/audit-log", audit_log)]
