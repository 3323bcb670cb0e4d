"""The account gate: what an access token alone cannot vouch for, checked without a database
round trip per request.

Each web process keeps in memory the ids of the users who are not ``active`` and of the admins
(both few). It follows the events channel through the process's one Redis subscriber
(``web.pubsub``): it loads them once Redis confirms the subscription (and again after every
reconnect), and re-reads one user whenever an ``account:status`` or ``account:role`` event for that
user passes by (``common.services.accounts`` emits them in the transaction that changes the row).
Re-reading the row instead of trusting the event's payload makes late or duplicated events
harmless. The loads and re-reads run in order on the gate's own task, so a slow database never
holds up the hub's events. While the subscription is down, and after a load or re-read failed
until a load succeeds (retried with capped backoff), the gate reads the user's row on every
request: slower, never wrong.

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
from aiohttp import web
from sqlalchemy import bindparam, or_, select

from common.errors import Unauthorized
from common.models import User
from common.redis import events_channel
from common.security.tokens import AccessClaims
from common.sql import compile_query
from web.db import Database
from web.keys import ACCOUNT_GATE, DB, SETTINGS, SUBSCRIBER
from web.pubsub import Subscriber

log = logging.getLogger(__name__)

_EXCEPTIONS = compile_query(
    select(User.id, User.status, User.role).where(or_(User.status != "active", User.role == "admin"))
)
_STATE = compile_query(select(User.status, User.role).where(User.id == bindparam("id")))
_EVENTS = (b'"account:status"', b'"account:role"')
_RETRY_START, _RETRY_MAX = 0.5, 10.0


class AccountGate:
    def __init__(self, db: Database, subscriber: Subscriber, channel: str) -> None:
        self.db = db
        self.subscriber = subscriber
        self.channel = channel
        self.blocked: set[int] = set()
        self.admins: set[int] = set()
        # True while the subscription is up and the sets have been loaded since it was made.
        self.ready = False
        self._live = False  # the subscription is up
        self._generation = 0  # bumped whenever the subscription is made or lost
        self._resync_pending = False
        # Account events to re-read, in order; None asks for a load afresh.
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._delay = _RETRY_START

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

    # -- following the events channel (web.pubsub.Consumer) -------------------------------------

    def on_subscribed(self) -> None:
        # Subscribed first, loaded second: no change can fall between the two.
        self._live = True
        self._generation += 1
        self._request_resync()

    def on_message(self, data: bytes) -> None:
        if any(name in data for name in _EVENTS):
            self._inbox.put_nowait(data)

    def on_lost(self) -> None:
        self._live = False
        self._generation += 1
        self.ready = False

    def _request_resync(self) -> None:
        if not self._resync_pending:
            self._resync_pending = True
            self._inbox.put_nowait(None)

    async def _resync(self) -> None:
        self._resync_pending = False
        generation = self._generation
        if not self._live:
            return  # the next subscription asks again
        await self.reload()
        # A subscription lost (or made again) during the load leaves the gate on the rows.
        if self._live and generation == self._generation:
            self.ready = True
            self._delay = _RETRY_START

    async def _on_message(self, data: bytes) -> None:
        event = orjson.loads(data)
        if event.get("event") in ("account:status", "account:role") and event.get("target") == "user":
            await self.refresh_user(int(event["targetId"]))

    async def _work(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                await (self._resync() if item is None else self._on_message(item))
            except Exception as exc:  # the database went away: fall back to the rows, reload later
                log.warning("account gate lost track of the accounts: %r", exc, exc_info=True)
                self.ready = False
                await asyncio.sleep(self._delay)  # retry back-off, not a wait for a test
                self._delay = min(self._delay * 2, _RETRY_MAX)
                self._request_resync()

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="account-gate")
        self.subscriber.follow(self.channel, self)

    async def stop(self) -> None:
        self.subscriber.unfollow(self.channel, self)
        self.on_lost()
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def account_gate_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after the database's and the subscriber's creation, before the
    subscriber starts): the gate of ``web.auth.authenticate``."""
    gate = AccountGate(app[DB], app[SUBSCRIBER], events_channel(app[SETTINGS]))
    app[ACCOUNT_GATE] = gate
    gate.start()
    yield
    await gate.stop()
