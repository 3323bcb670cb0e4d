"""Sign-up, sign-in and sessions (docs/api.md "Auth"): register, login, refresh, logout.

bcrypt runs on ``app[PASSWORDS]``'s bounded pool; writes run the ``common.services.auth``
functions in one transaction each; the credential lookup is a compiled query. Unknown email and
wrong password take the same path (a bcrypt check, an audit row) and give the same 401.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import bindparam, func, select

from common.config import Settings
from common.errors import Forbidden, Unauthorized
from common.models import User
from common.security.passwords import MAX_LENGTH, MIN_LENGTH
from common.security.tokens import issue_access_token
from common.services.auth import (
    SignedIn,
    hash_refresh_token,
    logout,
    record_login_failure,
    refresh_session,
    register_user,
    sign_in,
)
from common.sql import compile_query
from common.wire import Shape
from web.envelope import ok
from web.keys import CLIENT_IP, DB, LIMITER, PASSWORDS, SETTINGS, TRACE_ID
from web.openapi import describe
from web.refresh_cookie import clear_refresh_cookie, cookie_token, set_refresh_cookie
from web.schemas import Model, examples
from web.validation import parse_body

# Surrounding whitespace is stripped (web.schemas.Model) before the pattern applies.
_EMAIL_SHAPE = r"^\s*[^@\s\x00]{1,64}@[^@\s.\x00]+(\.[^@\s.\x00]+)+\s*$"
# Passwords are taken exactly as typed: never stripped, never truncated.
NewPassword = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=MIN_LENGTH, max_length=MAX_LENGTH)
]
# A sign-in compares, it does not judge: any non-empty password up to a sane bound (a longer
# one cannot be right, and bcrypt's cost does not depend on it).
GivenPassword = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=1024)]

# A NUL in any string of a body is refused before the model sees it (web.validation.read_json).
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=_EMAIL_SHAPE,
                             json_schema_extra={"format": "email"})]
Name = Annotated[str, Field(min_length=1, max_length=100)]

_CREDENTIALS = compile_query(
    select(User.id, User.password_hash, User.status)
    .where(func.lower(User.email) == bindparam("email"))
)


class RegisterBody(Model):
    model_config = examples({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada", "referralCode": "ADA2K9QX"})
    email: Email
    password: NewPassword
    name: Name
    referralCode: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        None, description="a member's code: they become this account's referrer (unknown: 422)")


class LoginBody(Model):
    model_config = examples({"email": "ada@example.com", "password": "correct horse battery"})
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: GivenPassword


class RefreshBody(Model):
    model_config = examples({"refreshToken": "l1kQ0b7dW3v9T6nq2mYcR8sXhE4aJ5pZ"})
    refreshToken: str | None = Field(
        None, min_length=1, max_length=512,
        description="the refresh token; absent: the sb_refresh cookie that sign-in set "
                    "(browser clients, docs/console.md)")


class UserProfile(Shape):
    id: int
    email: str
    name: str
    avatar: str | None
    role: Literal["user", "admin"]
    status: Literal["active", "suspended", "banned"]
    balance: Decimal
    pendingBalance: Decimal
    createdAt: dt.datetime
    referralCode: str = Field(description="the code others sign up with to become this "
                              "member's referees")
    payoutsFrozen: bool = Field(description="an admin froze this member's withdrawals "
                                "(a withdrawal gets 403 until unfrozen)")


class SessionOut(Shape):
    user: UserProfile
    accessToken: str
    refreshToken: str
    expiresIn: int = Field(description="seconds until the access token expires")


class RefreshOut(BaseModel):
    accessToken: str
    expiresIn: int
    refreshToken: str | None = Field(
        None, description="the next refresh token (rotation on); absent when the sb_refresh cookie "
                          "gave the token, whose successor is in the cookie only")


_LIMITED = {429: "Too many attempts from this address or for this email"}


def access_token(settings: Settings, user: User) -> str:
    return issue_access_token(settings, user_id=user.id, email=user.email, role=user.role)


def session_json(settings: Settings, signed: SignedIn) -> dict[str, Any]:
    """The ``data`` of login, register and password change."""
    return SessionOut.of(
        user=UserProfile.of(signed.user), accessToken=access_token(settings, signed.user),
        refreshToken=signed.refresh_token, expiresIn=settings.access_token_ttl,
    )


# Every answer that carries a token: a token kept in a cache (the browser's, a proxy's) outlives
# the sign-out that revoked it (RFC 6749 section 5.1).
TOKENS_NOT_STORED = {"Cache-Control": "no-store"}


def session_response(request: web.Request, signed: SignedIn, *, message: str,
                     status: int = 200) -> web.Response:
    """Login, register and password change: the session in the body, the refresh token also in
    the HttpOnly cookie (web.refresh_cookie)."""
    response = ok(session_json(request.app[SETTINGS], signed), status=status, message=message,
                  headers=TOKENS_NOT_STORED)
    if signed.refresh_token is not None:
        set_refresh_cookie(response, request, signed.refresh_token)
    return response


async def given_refresh_token(request: web.Request) -> tuple[str, bool]:
    """The body's ``refreshToken``, else the cookie's, and whether the cookie gave it. The body
    must be JSON either way: that is what keeps a cross-site form from using the cookie
    (docs/console.md)."""
    body = await parse_body(request, RefreshBody)
    if body.refreshToken is not None:
        return body.refreshToken, False
    token = cookie_token(request)
    if token is None:
        raise Unauthorized("No refresh token: send refreshToken, or the sb_refresh cookie from this "
                           "app's own pages")
    return token, True


def _context(request: web.Request) -> dict[str, Any]:
    return {"ip": request[CLIENT_IP], "trace_id": request[TRACE_ID]}


@describe("Create an account and sign in", tags=["auth"], body=RegisterBody, response=SessionOut,
          status=201, statuses={409: "Email already registered",
                                422: "Invalid values, or no member has the referral code",
                                **_LIMITED})
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterBody)
    app, settings = request.app, request.app[SETTINGS]
    await app[LIMITER].hit("register:ip", settings.rate_limit_register, request[CLIENT_IP])
    await app[LIMITER].hit("register:email", settings.rate_limit_register, body.email.lower())
    password_hash = await app[PASSWORDS].hash(body.password)
    signed = await app[DB].run(
        register_user, email=body.email, password_hash=password_hash, name=body.name,
        referral_code=body.referralCode, refresh_ttl=settings.refresh_token_ttl,
        **_context(request),
    )
    return session_response(request, signed, status=201, message="Account created")


@describe("Sign in", tags=["auth"], body=LoginBody, response=SessionOut,
          statuses={401: "Invalid email or password", 403: "Account suspended or banned", **_LIMITED})
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    app, settings = request.app, request.app[SETTINGS]
    email = body.email.lower()
    await app[LIMITER].hit("login:ip", settings.rate_limit_login, request[CLIENT_IP])
    await app[LIMITER].hit("login:email", settings.rate_limit_login_email, email)
    row = await app[DB].fetch_one(_CREDENTIALS, {"email": email})
    if not await app[PASSWORDS].verify(body.password, row["password_hash"] if row else None):
        await app[DB].run(
            record_login_failure, email=email, user_id=row["id"] if row else None,
            reason="wrong_password" if row else "unknown_email", **_context(request),
        )
        raise Unauthorized("Invalid email or password")
    assert row is not None  # a verified password belongs to a row
    if row["status"] != "active":
        await app[DB].run(
            record_login_failure, email=email, user_id=row["id"], reason=row["status"],
            **_context(request),
        )
        raise Forbidden(f"Account is {row['status']}")
    signed = await app[DB].run(
        sign_in, user_id=row["id"], refresh_ttl=settings.refresh_token_ttl, **_context(request)
    )
    return session_response(request, signed, message="Signed in")


@describe("A new access token for a refresh token (and the next refresh token when rotating)",
          tags=["auth"], body=RefreshBody, response=RefreshOut,
          statuses={401: "Unknown, expired, revoked or reused refresh token",
                    403: "Account suspended or banned",
                    429: "Too many refreshes from this address or with this token"})
async def refresh(request: web.Request) -> web.Response:
    token, from_cookie = await given_refresh_token(request)
    app, settings = request.app, request.app[SETTINGS]
    await app[LIMITER].hit("refresh:ip", settings.rate_limit_refresh, request[CLIENT_IP])
    # Keyed by the token's hash, as the database keeps it: the token itself never reaches Redis.
    await app[LIMITER].hit("refresh:token", settings.rate_limit_refresh_token,
                           hash_refresh_token(token).hex())
    outcome = await app[DB].run(
        refresh_session, token=token, rotation=settings.refresh_rotation,
        grace_seconds=settings.refresh_reuse_grace_seconds,
        refresh_ttl=settings.refresh_token_ttl, **_context(request),
    )
    if outcome.reused or outcome.user is None:
        raise Unauthorized("Refresh token was already used; sign in again")
    data: dict[str, Any] = {
        "accessToken": access_token(settings, outcome.user),
        "expiresIn": settings.access_token_ttl,
    }
    if outcome.refresh_token is not None and not from_cookie:
        # An API client: the cookie, if any, is another sign-in's and is left alone.
        data["refreshToken"] = outcome.refresh_token
    response = ok(data, headers=TOKENS_NOT_STORED)
    if outcome.refresh_token is not None and from_cookie:
        # A browser session: the successor goes to the cookie only. In the body, page script (an
        # injected one too) could read it, and HttpOnly would protect nothing.
        set_refresh_cookie(response, request, outcome.refresh_token)
    return response


@describe("Sign out: the refresh token's family stops working, and the cookie is cleared",
          tags=["auth"], body=RefreshBody,
          statuses={401: "Neither refreshToken nor the sb_refresh cookie"})
async def sign_out(request: web.Request) -> web.Response:
    token, _ = await given_refresh_token(request)
    await request.app[DB].run(logout, token=token, **_context(request))
    response = ok(message="Signed out")
    clear_refresh_cookie(response, request)
    return response


ROUTES = [
    ("POST", "/auth/register", register),
    ("POST", "/auth/login", login),
    ("POST", "/auth/refresh", refresh),
    ("POST", "/auth/logout", sign_out),
]
