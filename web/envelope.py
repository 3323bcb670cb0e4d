"""The response envelope of docs/api.md "Envelope", and JSON that keeps money exact."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import orjson
from aiohttp import web

from common.wire import iso, wire_value

JSON = "application/json"


def _default(value: Any) -> Any:
    wired = wire_value(value)
    if wired is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return wired


def dumps(payload: Any) -> bytes:
    # Passthrough: orjson would write datetimes itself (microseconds, "+00:00"); ``_default`` gives
    # the API's form (``iso``).
    return orjson.dumps(
        payload, default=_default,
        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME,
    )


# The last whole second ``now_iso`` wrote, and its text up to the seconds: every answer carries a
# timestamp, and formatting the date and time of day cost more than the rest of a small envelope.
# One tuple, replaced whole: safe to share between threads.
_second: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """``iso`` of now: the date and time of day written once per second, the milliseconds each
    time."""
    global _second
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, iso(dt.datetime.fromtimestamp(second, dt.UTC))[:19])
    return f"{cached[1]}.{nanos // 1_000_000:03d}Z"


def pagination(page: int, limit: int, total: int) -> dict[str, int]:
    return {"page": page, "limit": limit, "total": total, "totalPages": math.ceil(total / limit)}


def ok(
    data: Any = None,
    *,
    status: int = 200,
    message: str | None = None,
    page: dict[str, int] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"success": True}
    if data is not None:
        body["data"] = data
    if message:
        body["message"] = message
    if page is not None:
        body["pagination"] = page
    body["timestamp"] = now_iso()
    return web.Response(body=dumps(body), status=status, content_type=JSON, headers=headers)


def ok_data(data: str, *, status: int = 200) -> web.Response:
    """``ok(data)`` for ``data`` already written as JSON (by PostgreSQL: ``common.wire_sql``)."""
    body = (b'{"success":true,"data":' + data.encode() + b',"timestamp":"' + now_iso().encode()
            + b'"}')
    return web.Response(body=body, status=status, content_type=JSON)


def ok_fields(data: Any, page: dict[str, int] | None = None) -> bytes:
    """The fields ``ok`` writes between ``success`` and ``timestamp``, as JSON (``ok_from``)."""
    body: dict[str, Any] = {"data": data}
    if page is not None:
        body["pagination"] = page
    return dumps(body)[1:-1]


def ok_from(fields: bytes, *, headers: dict[str, str] | None = None) -> web.Response:
    """``ok`` for fields already written by ``ok_fields`` (a cached answer): the same JSON, with
    this moment's timestamp."""
    body = b'{"success":true,' + fields + b',"timestamp":"' + now_iso().encode() + b'"}'
    return web.Response(body=body, content_type=JSON, headers=headers)


def error(
    status: int,
    message: str,
    *,
    errors: list[str] | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    trace_id: str | None = None,
) -> web.Response:
    body: dict[str, Any] = {"success": False, "message": message}
    if errors:
        body["errors"] = errors
    if code:
        body["code"] = code
    if trace_id:
        body["traceId"] = trace_id
    body["timestamp"] = now_iso()
    return web.Response(body=dumps(body), status=status, content_type=JSON, headers=headers)
