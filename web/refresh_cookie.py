"""The refresh token as an ``HttpOnly`` cookie, for the browser pages this app serves (the
console, the demo page).

Sign-in, sign-up and a password change set it beside the JSON body's ``refreshToken`` (API
clients keep reading the body); refresh and sign-out take it when the JSON body names no token.
``SameSite=Strict`` and ``Path=/api/auth`` keep it off every other request and every request made
from another site, and the refresh and sign-out routes only take JSON bodies (a cross-site form
cannot send one). A request whose ``Origin`` is another origin neither sets, spends nor clears
it: SameSite lets a sibling subdomain's request carry the cookie, and an origin in
``ALLOWED_ORIGINS`` passes CORS with credentials and may read the answer (docs/console.md).
"""

from __future__ import annotations

from aiohttp import web

from web.keys import SETTINGS
from web.own_origin import is_own_origin

COOKIE = "sb_refresh"
# Only the auth routes under the newest-version alias see it (the console calls those).
COOKIE_PATH = "/api/auth"


def _own_pages(request: web.Request) -> bool:
    """A client that sends no Origin (not a browser's cross-origin call), or this app's pages."""
    origin = request.headers.get("Origin")
    return origin is None or is_own_origin(request, origin)


def set_refresh_cookie(response: web.Response, request: web.Request, token: str) -> None:
    if not _own_pages(request):
        return
    settings = request.app[SETTINGS]
    response.set_cookie(
        COOKIE, token, max_age=settings.refresh_token_ttl, path=COOKIE_PATH, httponly=True,
        samesite="Strict", secure=settings.secure_cookies,
    )


def clear_refresh_cookie(response: web.Response, request: web.Request) -> None:
    if not _own_pages(request):
        return
    response.del_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=request.app[SETTINGS].secure_cookies)


def cookie_token(request: web.Request) -> str | None:
    if not _own_pages(request):
        return None
    token = request.cookies.get(COOKIE, "")
    # A cookie is the client's input like a body: bounded as RefreshBody bounds the field.
    return token if 0 < len(token) <= 512 else None
