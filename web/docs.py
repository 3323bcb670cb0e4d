"""``GET /api/openapi.json``, ``GET /api/docs`` (Swagger UI, served by the app) and ``/metrics``.

Swagger UI's files come from the ``swagger-ui-py`` wheel (Swagger UI 5, which reads OpenAPI
3.1); the page loads nothing from another origin, and its CSP says so.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from web import asyncapi
from web.console import console_page, member_page
from web.envelope import dumps
from web.health import health, live
from web.metrics import setup_metrics
from web.openapi import (
    Description,
    Operation,
    build_document,
    describe,
    operation_id,
    operations,
)
from web.routes import API_PREFIXES, api_routes

TITLE = "SaveBucks API"
VERSION = "1"
INFO = (
    "Cashback and rewards platform. Every route below `/api` is also served below `/api/v1` "
    "(`/api` is the newest version). Responses use the envelope `{success, data, message, "
    "errors, pagination, timestamp}`; money is a JSON number with at most 2 decimals; "
    "timestamps are ISO 8601 UTC. Every response carries `X-Trace-ID`. Real-time events arrive "
    "on the WebSocket at `/ws`, described by the AsyncAPI document `/api/asyncapi.json`."
)
_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SaveBucks API</title>
<link rel="icon" href="/api/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script></body></html>
"""
# A file of its own, since the CSP allows no inline script. ``validatorUrl: null``: by default
# Swagger UI sends the document to an outside validator.
_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"
});
"""

_WS = Description(
    summary="WebSocket: real-time events and chat",
    description=(
        "Upgrades to a native WebSocket (docs/api.md \"WebSocket\"; every frame is in "
        "/api/asyncapi.json). The first frame is "
        '`{"event": "auth", "data": {"token": "<access token>", "since": "<last event id>"}}` '
        "within 5 s (`?token=` is accepted too); the server answers `ready`, then replays the "
        "user's events after `since`. Frames are JSON `{event, data}`; user events carry `id`. "
        "Close codes: 4401 bad token, 4403 suspended account, 1001 server going away."
    ),
    tags=("realtime",),
    status=101,
    statuses={400: "Not a WebSocket upgrade request"},
)
_METRICS = Description(
    summary="Prometheus metrics",
    description=("Prometheus text format; see docs/operations.md for each family. With "
                 "METRICS_TOKEN set, requires `Authorization: Bearer <token>` (401 otherwise)."),
    tags=("operations",),
    statuses={401: "METRICS_TOKEN is set and the request does not carry it"},
    envelope=False,
    media="text/plain",
)


@describe("This OpenAPI document", tags=["operations"], envelope=False)
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")


@describe("The AsyncAPI 3.0 document of the WebSocket /ws: every frame and its data",
          tags=["operations"], envelope=False)
async def asyncapi_json(request: web.Request) -> web.Response:
    return web.Response(body=asyncapi.document_bytes(VERSION), content_type="application/json")


@describe("Swagger UI rendering this document", tags=["operations"], envelope=False,
          media="text/html")
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html",
                        headers={"Content-Security-Policy": _PAGE_CSP})


async def docs_init(request: web.Request) -> web.Response:
    return web.Response(text=_INIT, content_type="application/javascript")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(_asset_dir() / name, headers={
        "Content-Type": _ASSETS[name], "Cache-Control": "public, max-age=86400",
    })


@functools.cache
def _asset_dir() -> Path:
    spec = importlib.util.find_spec("swagger_ui")  # located, not imported (it pulls in jinja2)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def documented_routes() -> list[tuple[str, str, Callable[..., Any]]]:
    """Every route the document describes, with its full path (the ``/api`` spelling)."""
    return [
        ("GET", "/health", health),
        ("GET", "/health/live", live),
        ("GET", "/api/openapi.json", openapi_json),
        ("GET", "/api/asyncapi.json", asyncapi_json),
        ("GET", "/api/docs", docs_page),
        ("GET", "/console/", console_page),
        ("GET", "/", member_page),
        *((method, API_PREFIXES[0] + path, handler) for method, path, handler in api_routes()),
    ]


def all_operations() -> list[Operation]:
    ops = operations(documented_routes())
    for at, (path, description) in enumerate((("/metrics", _METRICS), ("/ws", _WS)), start=1):
        ops.insert(at, Operation("GET", path, description, None,
                                 operation_id("GET", path, description)))
    return ops


def document() -> dict[str, Any]:
    return build_document(all_operations(), title=TITLE, version=VERSION, info=INFO)


@functools.cache
def document_bytes() -> bytes:
    """Built once per process: the routes and models are fixed at import."""
    return dumps(document())


def setup_docs(app: web.Application) -> None:
    setup_metrics(app)
    for prefix in API_PREFIXES:
        app.router.add_get(f"{prefix}/openapi.json", openapi_json)
        app.router.add_get(f"{prefix}/asyncapi.json", asyncapi_json)
        app.router.add_get(f"{prefix}/docs", docs_page)
    app.router.add_get("/api/docs/init.js", docs_init)
    app.router.add_get("/api/docs/assets/{name}", docs_asset)
