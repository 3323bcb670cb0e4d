"""The signed-in user's own account: ``GET/PATCH /auth/me`` and ``POST /auth/password``.

``GET /auth/me`` is a hot read: token check in process, the account gate in memory, one compiled
query whose one value is the profile's JSON, written by PostgreSQL (``common.wire_sql``) and
spliced into the envelope (bench/auth.py measures it against a bare psycopg handler).
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import bindparam, select

from common.errors import InvalidInput, Unauthorized, declare_codes
from common.models import User
from common.services.auth import change_password, update_profile
from common.sql import compile_query
from common.wire_sql import shape_json
from web.auth import current_user, require_user
from web.envelope import ok, ok_data
from web.handlers.auth import (
    GivenPassword,
    Name,
    NewPassword,
    SessionOut,
    UserProfile,
    session_response,
)
from web.keys import CLIENT_IP, DB, LIMITER, PASSWORDS, SETTINGS, TRACE_ID
from web.openapi import describe
from web.schemas import HTTPS_URL, Model, examples
from web.validation import parse_body

_u = User.__table__
declare_codes("wrong_password")
# The profile as the JSON ``dumps(UserProfile.of(row))`` would write (tests/common/test_wire_sql.py).
_PROFILE = compile_query(
    select(shape_json(UserProfile, _u.c).label("profile")).where(_u.c.id == bindparam("id"))
)
_PASSWORD_HASH = compile_query(select(_u.c.password_hash).where(_u.c.id == bindparam("id")))


class ProfileBody(Model):
    model_config = examples({"name": "Ada Lovelace", "avatar": "https://cdn.example.com/a/ada.png"})
    # null is refused below (a name cannot be removed): the document offers no null.
    name: Name | SkipJsonSchema[None] = None
    avatar: Annotated[str, Field(max_length=2048, pattern=HTTPS_URL,
                                 json_schema_extra={"format": "uri"})] | None = None


class PasswordBody(Model):
    model_config = examples({"currentPassword": "correct horse battery", "newPassword": "another long phrase"})
    currentPassword: GivenPassword
    newPassword: NewPassword


@describe("The signed-in user's profile", tags=["auth"], response=UserProfile)
@require_user
async def me(request: web.Request) -> web.Response:
    row = await request.app[DB].fetch_one(_PROFILE, {"id": current_user(request).user_id})
    if row is None:  # the account is gone; its token names nobody
        raise Unauthorized("Invalid or expired token")
    return ok_data(row["profile"])


@describe("Change the signed-in user's name or avatar", tags=["auth"], body=ProfileBody,
          response=UserProfile)
@require_user
async def update_me(request: web.Request) -> web.Response:
    body = await parse_body(request, ProfileBody)
    changes: dict[str, Any] = {
        key: getattr(body, key) for key in ("name", "avatar") if key in body.model_fields_set
    }
    if changes.get("name", "") is None:
        raise InvalidInput("Invalid body", errors=["name: cannot be null"])
    user = await request.app[DB].run(
        update_profile, user_id=current_user(request).user_id, changes=changes
    )
    return ok(UserProfile.of(user))


@describe("Change the password: every refresh token is revoked, a fresh pair returned",
          tags=["auth"], body=PasswordBody, response=SessionOut,
          statuses={429: "Too many attempts for this user"})
@require_user
async def password(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordBody)
    app, settings, user_id = request.app, request.app[SETTINGS], current_user(request).user_id
    await app[LIMITER].hit("password:user", settings.rate_limit_login_email, user_id)
    row = await app[DB].fetch_one(_PASSWORD_HASH, {"id": user_id})
    if row is None:
        raise Unauthorized("Invalid or expired token")
    if not await app[PASSWORDS].verify(body.currentPassword, row["password_hash"]):
        # 422, not 401: the client's token is fine and must not be refreshed or dropped.
        raise InvalidInput("Current password is incorrect", errors=["currentPassword: incorrect"],
                           code="wrong_password")
    new_hash = await app[PASSWORDS].hash(body.newPassword)
    signed = await app[DB].run(
        change_password, user_id=user_id, password_hash=new_hash,
        refresh_ttl=settings.refresh_token_ttl, ip=request[CLIENT_IP], trace_id=request[TRACE_ID],
    )
    return session_response(request, signed, message="Password changed")


ROUTES = [
    ("GET", "/auth/me", me),
    ("PATCH", "/auth/me", update_me),
    ("POST", "/auth/password", password),
]
