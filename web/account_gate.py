"""The account gate: what an access token alone cannot vouch for, checked without a database
round trip per request.

Each web process keeps in memory the ids of the users who are not ``active`` and of the admins
(both few). It loads them when its subscription to the events channel starts (and again after
every reconnect), and re-reads one user whenever an ``account:status`` or ``account:role`` event
for that user passes by (``common.services.accounts`` emits them in the transaction that changes
the row). Re-reading the row instead of trusting the event's payload makes late or duplicated
events harmless. While the subscription is down the gate reads the user's row on every request:
slower, never wrong.

A request is refused when the user is blocked (403), and when its token claims ``admin`` but the
user no longer is one (401: the client refreshes and gets a token with its real role). An admin
token of a user the process does not know as admin is checked against the row once, then
remembered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
import redis.asyncio as aredis
from aiohttp import web
from sqlalchemy import bindparam, or_, select

from common.errors import Unauthorized
from common.models import User
from common.redis import events_channel
from common.security.tokens import AccessClaims
from common.sql import compile_query
from web.auth import ACCOUNT_GATE
from web.db import Database
from web.keys import DB, REDIS, SETTINGS

log = logging.getLogger(__name__)

_EXCEPTIONS = compile_query(
    select(User.id, User.status, User.role).where(or_(User.status != "active", User.role == "admin"))
)
_STATE = compile_query(select(User.status, User.role).where(User.id == bindparam("id")))
_EVENTS = (b'"account:status"', b'"account:role"')
_RETRY_MAX = 10.0


class AccountGate:
    def __init__(self, db: Database, redis: aredis.Redis, channel: str) -> None:
        self.db = db
        self.redis = redis
        self.channel = channel
        self.blocked: set[int] = set()
        self.admins: set[int] = set()
        self.ready = False
        self._task: asyncio.Task[None] | None = None
        self._delay = 0.5

    async def __call__(self, app: web.Application, claims: AccessClaims) -> bool:
        """True when the account is blocked; raises ``Unauthorized`` for an outdated admin role."""
        uid = claims.user_id
        if self.ready and (claims.role != "admin" or uid in self.admins):
            return uid in self.blocked
        # Subscription down, or an admin token this process has not seen as admin (a demotion,
        # or an admin made after the load): the row decides, and is remembered.
        row = await self.db.fetch_one(_STATE, {"id": uid})
        if row is None:
            raise Unauthorized("Invalid or expired token")
        blocked = row["status"] != "active"
        if row["role"] == "admin":
            self.admins.add(uid)
        elif claims.role == "admin" and not blocked:
            raise Unauthorized("Token role is out of date; refresh it")
        return blocked

    async def reload(self) -> None:
        rows = await self.db.fetch_all(_EXCEPTIONS)
        self.blocked = {r["id"] for r in rows if r["status"] != "active"}
        self.admins = {r["id"] for r in rows if r["role"] == "admin"}

    async def refresh_user(self, user_id: int) -> None:
        row = await self.db.fetch_one(_STATE, {"id": user_id})
        status, role = (row["status"], row["role"]) if row else ("banned", "user")
        (self.blocked.discard if status == "active" else self.blocked.add)(user_id)
        (self.admins.add if role == "admin" else self.admins.discard)(user_id)

    async def _on_message(self, data: bytes) -> None:
        if not any(name in data for name in _EVENTS):
            return
        event = orjson.loads(data)
        if event.get("event") in ("account:status", "account:role") and event.get("target") == "user":
            await self.refresh_user(int(event["targetId"]))

    async def _follow(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # Subscribed first, loaded second: no change can fall between the two.
                    await self.reload()
                    self.ready = True
                    self._delay = 0.5
                elif message["type"] == "message":
                    await self._on_message(message["data"])
        finally:
            self.ready = False
            await pubsub.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or the database went away: fall back, then retry
                log.warning("account gate lost its subscription: %r", exc, exc_info=True)
            await asyncio.sleep(self._delay)  # reconnect back-off, not a wait for a test
            self._delay = min(self._delay * 2, _RETRY_MAX)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="account-gate")

    async def stop(self) -> None:
        # redis-py's ``get_message(timeout=...)`` can swallow a cancellation that lands as its
        # read times out (the task then runs on): cancel again until the task is really done.
        task = self._task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.2)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def account_gate_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after the database's): the gate of ``web.auth.authenticate``."""
    gate = AccountGate(app[DB], app[REDIS], events_channel(app[SETTINGS]))
    app[ACCOUNT_GATE] = gate
    gate.start()
    yield
    await gate.stop()
