"""What the fuzzing found, pinned: values PostgreSQL refuses are a 4xx, never a 500."""

from __future__ import annotations

from aiohttp import web

from common.config import get_settings
from common.sql import Query
from web.envelope import ok
from web.keys import DB, SETTINGS
from web.middlewares import MIDDLEWARES
from web.schemas import Model
from web.validation import parse_body, parse_query

_ECHO = Query(sql="SELECT %(name)s::text AS name", defaults={})


class Named(Model):
    name: str


async def _store(request: web.Request) -> web.Response:
    body = await parse_body(request, Named)
    row = await request.app[DB].fetch_one(_ECHO, {"name": body.name})
    return ok(dict(row) if row else None)


async def _query(request: web.Request) -> web.Response:
    return ok(parse_query(request, Named).model_dump())


async def test_nul_reaching_the_database_is_422_and_in_a_query_400(aiohttp_client, bound_db) -> None:  # type: ignore[no-untyped-def]
    app = web.Application(middlewares=MIDDLEWARES)
    app[SETTINGS] = get_settings()
    app[DB] = bound_db
    app.router.add_post("/store", _store)
    app.router.add_get("/query", _query)
    client = await aiohttp_client(app)
    json = {"Content-Type": "application/json"}
    resp = await client.post("/store", data='{"name": "a\\u0000b"}', headers=json)
    assert resp.status == 422
    body = await resp.json()
    # Refused as the body is read (web.validation.read_json), before the database sees it.
    assert body["success"] is False and body["code"] == "invalid"
    assert body["errors"] == ["body: strings must not contain NUL"]
    fine = await client.post("/store", data='{"name": "a\\\\u0000b"}', headers=json)
    assert fine.status == 200  # a backslash followed by u0000 is text, not a NUL
    assert (await fine.json())["data"] == {"name": "a\\u0000b"}
    assert (await client.get("/query?name=a%00b")).status == 400
    assert (await client.get("/query?name=ab")).status == 200


def test_datetimes_in_a_response_are_iso_z_with_milliseconds() -> None:
    """orjson writes datetimes itself unless told not to; the API's form is ``iso``'s."""
    import datetime as dt
    import re

    from web.envelope import dumps
    from web.openapi import ISO_Z

    aware = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    out = dumps({"at": aware, "naive": dt.datetime(2026, 1, 2), "day": dt.date(2026, 1, 2)})
    assert out == b'{"at":"2026-01-02T01:04:05.678Z","naive":"2026-01-02T00:00:00.000Z","day":"2026-01-02"}'
    assert re.match(ISO_Z, "2026-01-02T01:04:05.678Z")
