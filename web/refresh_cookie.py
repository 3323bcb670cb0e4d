"""The refresh token as an ``HttpOnly`` cookie, for browser clients such as the console.

Sign-in, sign-up and a password change set it beside the JSON body's ``refreshToken`` (API
clients keep reading the body); refresh and sign-out take it when the JSON body names no token.
``SameSite=Strict`` and ``Path=/api/auth`` keep it off every other request and every request made
from another site, and the refresh and sign-out routes only take JSON bodies (a cross-site form
cannot send one), so the cookie alone cannot be used for a forged request (docs/console.md).
"""

from __future__ import annotations

from aiohttp import web

from common.config import Settings

COOKIE = "sb_refresh"
# Only the auth routes under the newest-version alias see it (the console calls those).
COOKIE_PATH = "/api/auth"


def set_refresh_cookie(response: web.Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        COOKIE, token, max_age=settings.refresh_token_ttl, path=COOKIE_PATH, httponly=True,
        samesite="Strict", secure=settings.secure_cookies,
    )


def clear_refresh_cookie(response: web.Response, settings: Settings) -> None:
    response.del_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=settings.secure_cookies)


def cookie_token(request: web.Request) -> str | None:
    token = request.cookies.get(COOKIE, "")
    # A cookie is the client's input like a body: bounded as RefreshBody bounds the field.
    return token if 0 < len(token) <= 512 else None
