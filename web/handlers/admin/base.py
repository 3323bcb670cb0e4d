"""What every admin handler shares: the audit context of the request, ids, pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from common.wire import Shape
from web.auth import current_user
from web.envelope import ok, pagination
from web.keys import CLIENT_IP, DB, TRACE_ID
from web.schemas import PageQuery


def audit_context(request: web.Request) -> dict[str, Any]:
    """Who (the admin), from where (client IP) and under which trace id: for ``record_audit``."""
    return {"actor_id": current_user(request).user_id, "ip": request.get(CLIENT_IP),
            "trace_id": request.get(TRACE_ID)}


async def paged(request: web.Request, q: PageQuery, fn: Callable[..., Any], shape: type[Shape],
                **filters: Any) -> web.Response:
    """A page of ``fn``'s rows, each as ``shape``."""
    rows, total = await request.app[DB].run(fn, limit=q.limit, offset=q.offset, **filters)
    return ok([shape.of(r) for r in rows], page=pagination(q.page, q.limit, total))
