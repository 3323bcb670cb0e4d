"""A route marked ``@deprecated`` answers with Deprecation, Sunset and Link (errors too), and the
document marks its operation deprecated; other routes carry none of them."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp import web

from common.config import get_settings
from common.errors import NotFound
from web.auth import require_user
from web.deprecation import deprecated
from web.envelope import ok
from web.keys import SETTINGS
from web.middlewares import MIDDLEWARES
from web.openapi import build_document, describe, operations

SINCE = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
SUNSET = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


@deprecated(since=SINCE, sunset=SUNSET, successor="/api/v2/things")
@describe("old things")
async def _old(request: web.Request) -> web.Response:
    if request.query.get("missing"):
        raise NotFound("Thing not found")
    return ok({"old": True})


@describe("new things")
@require_user
async def _new(request: web.Request) -> web.Response:
    return ok({"old": False})


async def test_a_deprecated_route_says_when_it_goes_and_what_replaces_it(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    app = web.Application(middlewares=MIDDLEWARES)
    app[SETTINGS] = get_settings()
    app.router.add_get("/api/things", _old)
    app.router.add_get("/api/v2/things", _new)
    client = await aiohttp_client(app)
    for query in ({}, {"missing": "1"}):
        resp = await client.get("/api/things", params=query)
        assert resp.status == (404 if query else 200)
        assert resp.headers["Deprecation"] == "@1780272000"
        assert resp.headers["Sunset"] == "Thu, 31 Dec 2026 23:59:59 GMT"
        assert resp.headers["Link"] == '</api/v2/things>; rel="successor-version"'
    live = await client.get("/api/v2/things")
    assert not {"Deprecation", "Sunset", "Link"} & set(live.headers)
    unrouted = await client.get("/api/nowhere")
    assert unrouted.status == 404 and "Deprecation" not in unrouted.headers


def test_the_document_marks_the_operation_deprecated_and_names_its_headers() -> None:
    doc = build_document(operations([("GET", "/api/things", _old), ("GET", "/api/v2/things", _new)]),
                         title="t", version="1", info="i")
    old, new = doc["paths"]["/api/things"]["get"], doc["paths"]["/api/v2/things"]["get"]
    assert old["deprecated"] is True and "2026-12-31" in old["description"]
    assert set(old["responses"]["200"]["headers"]) == {"Deprecation", "Sunset", "Link"}
    assert "deprecated" not in new and "headers" not in new["responses"]["200"]


def test_a_retirement_needs_aware_times_in_order() -> None:
    with pytest.raises(ValueError):
        deprecated(since=SUNSET, sunset=SINCE)
    with pytest.raises(ValueError):
        deprecated(since=SINCE.replace(tzinfo=None), sunset=SUNSET)
