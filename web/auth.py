"""Requiring a signed-in user or an admin: ``@require_user`` / ``@require_admin`` on a handler.

The access token's claims identify the user without a database round trip; the account state
check (suspended, banned) is ``ACCOUNT_GATE``'s job (``web.account_gate``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from common.errors import Forbidden, Unauthorized
from common.security.tokens import AccessClaims, InvalidToken, VerifiedTokens
from web.keys import ACCOUNT_GATE, CURRENT_USER, SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# An HS256 check costs about as much as the hot handlers' database read: verify each token once.
_VERIFIED = VerifiedTokens()


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: web.Request) -> AccessClaims:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Authentication required")
    try:
        claims = _VERIFIED.decode(request.app[SETTINGS], token)
    except InvalidToken:
        raise Unauthorized("Invalid or expired token") from None
    gate = request.app.get(ACCOUNT_GATE)
    if gate is not None and await gate(request.app, claims):
        raise Forbidden("Account is not active")
    request[CURRENT_USER] = claims
    return claims


async def is_current_admin(request: web.Request) -> bool:
    """For a public route that shows admins more: true only for a signed-in admin whose account
    is an active admin now (the check ``@require_admin`` makes). Any other caller, including one
    with a bad, demoted or banned admin token, is answered as the public is, never refused."""
    if bearer_token(request) is None:
        return False
    try:
        claims = await authenticate(request)
    except (Unauthorized, Forbidden):
        return False
    return claims.role == "admin"


def require_user(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        await authenticate(request)
        return await handler(request)

    wrapper.auth = "user"  # type: ignore[attr-defined]  # read by the OpenAPI generator
    return wrapper


def require_admin(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        claims = await authenticate(request)
        if claims.role != "admin":
            raise Forbidden("Admin role required")
        return await handler(request)

    wrapper.auth = "admin"  # type: ignore[attr-defined]
    return wrapper


def current_user(request: web.Request) -> AccessClaims:
    return request[CURRENT_USER]

