"""The user's notifications (docs/api.md "Operations")."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import bindparam, func, select

from common.errors import NotFound
from common.models.notifications import Notification
from common.services.notifications import mark_all_read, mark_read, notification_json
from common.sql import compile_query
from web.auth import current_user, require_user
from web.envelope import ok, pagination
from web.ids import IdPath, path_id
from web.keys import DB
from web.money_schemas import NotificationOut, ReadAllOut, ReadOut
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import PageQuery
from web.validation import parse_query

_n = Notification.__table__


def _page(*, unread: bool) -> Any:
    stmt = select(_n, func.count().over().label("total")).where(_n.c.user_id == bindparam("user_id"))
    if unread:
        stmt = stmt.where(_n.c.read_at.is_(None))
    return compile_query(stmt.order_by(_n.c.id.desc()).limit(bindparam("limit")).offset(bindparam("offset")))


def _count(*, unread: bool) -> Any:
    stmt = select(func.count().label("total")).where(_n.c.user_id == bindparam("user_id"))
    if unread:
        stmt = stmt.where(_n.c.read_at.is_(None))
    return compile_query(stmt)


_PAGES = {flag: _page(unread=flag) for flag in (False, True)}
_COUNTS = {flag: _count(unread=flag) for flag in (False, True)}


class NotificationQuery(PageQuery):
    unread: bool = False


@describe("The user's notifications, newest first (unread=true)", tags=["notifications"],
          query=NotificationQuery, response=NotificationOut, list=True)
@require_user
async def list_notifications(request: web.Request) -> web.Response:
    q = parse_query(request, NotificationQuery)
    params = {"user_id": current_user(request).user_id, "limit": q.limit, "offset": q.offset}
    rows, total = await fetch_page(request.app[DB], _PAGES[q.unread], _COUNTS[q.unread], params, page=q.page)
    return ok([notification_json(r) for r in rows], page=pagination(q.page, q.limit, total))


@describe("Mark one notification read", tags=["notifications"], path=IdPath, response=ReadOut,
          statuses={404: "No such notification of this user"})
@require_user
async def read_one(request: web.Request) -> web.Response:
    notification_id = path_id(request, "Notification")
    found = await request.app[DB].run(
        mark_read, user_id=current_user(request).user_id, notification_id=notification_id)
    if not found:
        raise NotFound("Notification not found")
    return ok(ReadOut.of(id=notification_id, read=True))


@describe("Mark every notification read", tags=["notifications"], response=ReadAllOut)
@require_user
async def read_all(request: web.Request) -> web.Response:
    count = await request.app[DB].run(mark_all_read, user_id=current_user(request).user_id)
    return ok(ReadAllOut.of(updated=count))


ROUTES = [
    ("GET", "/notifications", list_notifications),
    ("POST", "/notifications/read-all", read_all),
    ("POST", "/notifications/{id:\\d+}/read", read_one),
]
