"""The browser pages the app serves itself: the admin console at ``/console/`` and, when
``DEMO_PAGE`` is on (development by default), the member demo page at ``/`` (docs/console.md).

Their front-end source is in ``console/`` at the repository root; ``npm ci && npm run build``
there (bin/run and bin/test do it) writes ``console/dist/``, which is served from here. Every
page and asset carries a Content-Security-Policy that allows this origin only: scripts and styles
from files (no inline code), API calls and the ``/ws`` socket to the origin that served the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from web.keys import SETTINGS
from web.openapi import describe

DIST = Path(__file__).resolve().parents[1] / "console" / "dist"
PAGES = {"console": "console.html", "member": "member.html"}
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(js|css|map|svg|png)$")
_TYPES = {"js": "text/javascript", "css": "text/css", "map": "application/json",
          "svg": "image/svg+xml", "png": "image/png"}


def page_csp(request: web.Request) -> str:
    """Only this origin; the socket named exactly (ws: or wss:, as the page was served)."""
    socket = f"{'wss' if request.secure else 'ws'}://{request.host}/ws"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"font-src 'self'; connect-src 'self' {socket}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _page(name: str, request: web.Request) -> web.StreamResponse:
    path = DIST / PAGES[name]
    if not path.is_file():
        raise web.HTTPServiceUnavailable(
            text="The console is not built: run bin/run, or `npm ci && npm run build` in console/",
            content_type="text/plain")
    return web.FileResponse(path, headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
        "Content-Security-Policy": page_csp(request),
    })


@describe("The admin console (a browser application over this API, docs/console.md)",
          tags=["console"], envelope=False, media="text/html",
          statuses={503: "The console's front end is not built"})
async def console_page(request: web.Request) -> web.StreamResponse:
    return _page("console", request)


@describe("The member demo page (on when DEMO_PAGE is, by default in development only)",
          tags=["console"], envelope=False, media="text/html",
          statuses={404: "The demo page is off", 503: "The console's front end is not built"})
async def member_page(request: web.Request) -> web.StreamResponse:
    if not request.app[SETTINGS].demo_page_on:
        raise web.HTTPNotFound()
    return _page("member", request)


async def console_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/console/")


async def asset(request: web.Request) -> web.StreamResponse:
    # A flat folder of known kinds: a name with a slash or dots cannot leave it.
    name = request.match_info["name"]
    path = DIST / "assets" / name
    if not _ASSET_NAME.match(name) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={
        "Content-Type": _TYPES[name.rsplit(".", 1)[1]], "Cache-Control": "no-cache",
        "Content-Security-Policy": page_csp(request),
    })


def setup_console(app: web.Application) -> None:
    app.router.add_get("/console", console_redirect)
    app.router.add_get("/console/", console_page)
    app.router.add_get("/console/assets/{name}", asset)
    app.router.add_get("/", member_page)
