"""Clients of a cluster, as real ones behave: members with money, WebSocket clients that reconnect
through the load balancer and resume from the last event id they saw, postbacks of the
cluster's network, withdrawals retried with their Idempotency-Key until they get an answer, and
chat. Every loop is bounded by a stop flag and every request by a client timeout.

Shared by the cluster tests, the drills' longer forms (``bench/cluster_drills.py``) and the soak
(``bench/soak.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.config import Settings, load_settings
from common.models.outbox import OutboxEvent
from common.postbacks import generic_signature
from common.security.tokens import issue_access_token
from tests.cluster.harness import NETWORK, SECRET, Cluster

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=15)
_txn = itertools.count(1)


@dataclass
class Member:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def settings_of(cluster: Cluster) -> Settings:
    return load_settings(cluster.env())


def make_members(cluster: Cluster, count: int, funds: Decimal | str = "0",
                 role: str = "user") -> list[Member]:
    """``count`` members, committed, each with ``funds`` through the ledger."""
    from tests.fixtures.factories import make_user
    from tests.fixtures.money_factories import fund

    settings = settings_of(cluster)
    engine = cluster.engine()
    with Session(engine, expire_on_commit=False) as session, session.begin():
        users = [make_user(session, role=role) for _ in range(count)]
        for user in users:
            if Decimal(funds):
                fund(session, user.id, funds)
    return [Member(u.id, u.email, issue_access_token(settings, user_id=u.id, email=u.email,
                                                     role=role)) for u in users]


def user_event_ids(cluster: Cluster, user_ids: Sequence[int]) -> dict[int, set[int]]:
    """Every event the outbox holds for each user (what their sockets must all have seen)."""
    engine = cluster.engine()
    o = OutboxEvent.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(o.c.target_id, o.c.id).where(
            o.c.target == "user", o.c.target_id.in_(list(user_ids)))).all()
    found: dict[int, set[int]] = {uid: set() for uid in user_ids}
    for user_id, event_id in rows:
        found[user_id].add(event_id)
    return found


def postback_path(member_id: int, *, offer: str = "cluster-offer", amount: str = "1.00") -> str:
    params = {"user_id": str(member_id), "offer_id": offer,
              "txn_id": f"cl-{os.getpid()}-{next(_txn)}-{uuid.uuid4().hex[:6]}",
              "amount": amount, "status": "1"}
    params["sig"] = generic_signature(SECRET, params)
    return f"/api/postbacks/{NETWORK}?" + "&".join(f"{k}={v}" for k, v in params.items())


@dataclass
class Socket:
    """One member's WebSocket through the balancer: reconnects whenever it is closed or cut,
    with ``since`` = the highest event id it saw, until ``stop``. A resume may repeat events it
    has (docs/api.md "Resume"): those are dropped by id, as a client does, and counted."""

    url: str
    member: Member
    ids: list[int] = field(default_factory=list)
    repeats: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    connects: int = 0
    # Seconds from losing the socket to ``ready`` on a new one.
    reconnects: list[float] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reconnect: bool = True
    _stop: bool = False
    chat_room: str | None = None
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def last_id(self) -> int | None:
        return max(self.ids) if self.ids else None

    async def run(self, session: aiohttp.ClientSession) -> None:
        lost_at: float | None = None
        seen: set[int] = set()
        while not self._stop:
            params = {"token": self.member.token}
            if self.last_id is not None:
                params["since"] = str(self.last_id)
            elif self.connects:
                # Away before its first event: without ``since`` the events of the gap are not
                # replayed. ``0`` asks for the member's whole history (or ``sync:refetch``).
                params["since"] = "0"
            try:
                async with session.ws_connect(self.url, params=params, heartbeat=None,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        frame = orjson.loads(msg.data)
                        if frame["event"] == "ready":
                            self.connects += 1
                            if lost_at is not None:
                                self.reconnects.append(time.monotonic() - lost_at)
                                lost_at = None
                            self.ready.set()
                        if "id" in frame:
                            if frame["id"] in seen:
                                self.repeats += 1
                            else:
                                seen.add(frame["id"])
                                self.ids.append(frame["id"])
                    self.closes[ws.close_code or 0] += 1
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.errors[type(exc).__name__] += 1
            self.ready.clear()
            if lost_at is None:
                lost_at = time.monotonic()
            if not self.reconnect:
                return
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self._stop = True


@dataclass
class Answers:
    """Statuses by route, and the latency of each answer (for percentiles per minute)."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    times: list[tuple[float, float]] = field(default_factory=list)  # (ended at, seconds)

    def add(self, route: str, status: int, started: float) -> None:
        now = time.monotonic()
        self.statuses.setdefault(route, Counter())[status] += 1
        self.times.append((now, now - started))

    def count(self, predicate: Any) -> int:
        return sum(n for c in self.statuses.values() for s, n in c.items() if predicate(s))


@dataclass
class Load:
    """Postbacks, withdrawals and (optionally) chat through the balancer, until ``stop``."""

    base: str
    members: list[Member]
    answers: Answers = field(default_factory=Answers)
    # Withdrawal Idempotency-Keys and what each finally got (a retried key counts once).
    withdrawals: dict[str, int] = field(default_factory=dict)
    postbacks: int = 0
    pause: float = 0.02
    _stop: bool = False

    async def _request(self, session: aiohttp.ClientSession, route: str, method: str, path: str,
                       **kwargs: Any) -> int:
        started = time.monotonic()
        try:
            async with session.request(method, self.base + path, **kwargs) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.answers.add(route, status, started)
        return status

    async def postback_loop(self, session: aiohttp.ClientSession, offset: int) -> None:
        for i in itertools.count(offset):
            if self._stop:
                return
            member = self.members[i % len(self.members)]
            status = await self._request(session, "postback", "GET", postback_path(member.id))
            self.postbacks += status == 200
            await asyncio.sleep(self.pause if status == 200 else 0.1)

    async def withdraw(self, session: aiohttp.ClientSession, member: Member,
                       amount: str = "5.00") -> int:
        """One withdrawal: the same key sent again while the answer is no answer, a 5xx or a
        409 (the first attempt still running), as a client that lost its connection would."""
        key = uuid.uuid4().hex
        body = {"amount": amount, "method": "paypal", "destination": f"m{member.id}@example.com"}
        headers = {**member.auth, "Idempotency-Key": key}
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            status = await self._request(session, "withdrawal", "POST", "/api/payments",
                                         json=body, headers=headers)
            if status not in (0, 409) and status < 500:
                break
            await asyncio.sleep(0.2)
        self.withdrawals[key] = status
        return status

    async def withdrawal_loop(self, session: aiohttp.ClientSession, offset: int) -> None:
        for i in itertools.count(offset):
            if self._stop:
                return
            await self.withdraw(session, self.members[i % len(self.members)])
            await asyncio.sleep(self.pause * 5)

    async def run(self, *, postbackers: int = 2, withdrawers: int = 1) -> None:
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
            await asyncio.gather(*(self.postback_loop(session, n) for n in range(postbackers)),
                                 *(self.withdrawal_loop(session, n) for n in range(withdrawers)))

    def stop(self) -> None:
        self._stop = True


async def open_sockets(session: aiohttp.ClientSession, url: str, members: Sequence[Member],
                       per_member: int = 1, timeout: float = 30) -> tuple[list[Socket], list[asyncio.Task[None]]]:
    """Sockets for each member, running, each ready (``ready``) before this returns."""
    sockets = [Socket(url, m) for m in members for _ in range(per_member)]
    tasks = [asyncio.create_task(s.run(session)) for s in sockets]
    await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in sockets)), timeout)
    return sockets, tasks


async def close_sockets(sockets: Sequence[Socket], tasks: Sequence[asyncio.Task[None]]) -> None:
    for s in sockets:
        s.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def poll(predicate: Any, timeout: float, what: str) -> None:
    """Wait until ``predicate()`` (sync or async) is true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)
