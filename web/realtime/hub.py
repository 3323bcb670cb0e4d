"""The hub of one web process: its sockets, and the routing of events to them.

The hub follows ``common.redis.events_channel`` through the process's one Redis subscriber
(``web.pubsub``, which reconnects with capped exponential backoff when Redis goes away) and routes
each outbox event (``common.events.Event.wire``) to the sockets of ``user:{id}``, ``room:{id}``
or everyone it holds. The outbox sweep may publish an event twice: the hub drops an id it has
already routed.

It also keeps its sockets' heartbeat (``WS_HEARTBEAT``: a ping to a client silent that long, the
TCP connection dropped when nothing answers within half of it) and closes the sockets whose token
has expired (``Connection.expires_at``), in one sweep every ``SWEEP_SECONDS`` (or half the
heartbeat, when shorter) rather than with two timers per socket: an idle socket costs less memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from common.metrics import EVENTS_DELIVERED, EVENTS_RECEIVED
from web.realtime import protocol
from web.realtime.connection import Connection

if TYPE_CHECKING:
    from web.pubsub import Subscriber

log = logging.getLogger(__name__)
# Ids of recently routed events kept to drop the sweep's republications.
RECENT_IDS = 10_000
# How often expired tokens are looked for: a socket outlives its token's grace by at most this.
SWEEP_SECONDS = 1.0


class Hub:
    def __init__(self, subscriber: Subscriber, channel: str, *, max_per_user: int,
                 heartbeat: float) -> None:
        self.subscriber = subscriber
        self.channel = channel
        self.max_per_user = max_per_user
        self.heartbeat = heartbeat
        self.dropped_silent = 0  # sockets whose peer answered no ping
        self.sockets: set[Connection] = set()
        # A list per user: at most ``max_per_user`` sockets, and a list of one is a quarter of a set.
        self.users: dict[int, list[Connection]] = {}
        self.rooms: dict[int, set[Connection]] = {}
        # Upgraded sockets that have not authenticated yet (closed on shutdown too).
        self.pending: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.closed_too_slow = 0
        self._recent: OrderedDict[int, None] = OrderedDict()
        # Set when the subscriber lost the channel; the next subscription makes sockets resume.
        self._lost = False
        self.resumed_after_loss = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # -- registry -------------------------------------------------------------------------------

    def register(self, conn: Connection) -> bool:
        """Add an authenticated socket; False when its user is at the per-user cap."""
        mine = self.users.get(conn.user_id)
        if mine is None:
            self.users[conn.user_id] = [conn]
        elif len(mine) >= self.max_per_user:
            return False
        elif conn not in mine:
            mine.append(conn)
        self.sockets.add(conn)
        return True

    def unregister(self, conn: Connection) -> None:
        self.sockets.discard(conn)
        mine = self.users.get(conn.user_id)
        if mine is not None and conn in mine:
            mine.remove(conn)
            if not mine:
                del self.users[conn.user_id]
        for room_id in conn.rooms:
            _discard(self.rooms, room_id, conn)

    def join(self, conn: Connection, room_id: int) -> None:
        if conn in self.sockets:
            conn.rooms |= {room_id}
            self.rooms.setdefault(room_id, set()).add(conn)

    def leave(self, conn: Connection, room_id: int) -> None:
        conn.rooms -= {room_id}
        _discard(self.rooms, room_id, conn)

    def stats(self) -> dict[str, int]:
        return {
            "sockets": len(self.sockets),
            "users": len(self.users),
            "rooms": len(self.rooms),
            "pending": len(self.pending),
        }

    # -- routing --------------------------------------------------------------------------------

    def route(self, raw: bytes | str) -> None:
        """Deliver one pub/sub message to the sockets it targets. Never raises on bad input."""
        try:
            message = orjson.loads(raw)
            event_id, event = message["id"], message["event"]
            target, target_id, data = message["target"], message.get("targetId"), message["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("unroutable event dropped")
            return
        if self._seen(event_id):
            return
        if event in protocol.INTERNAL_EVENTS:
            self._internal(event, target, target_id, data)
            return
        if target == "user":
            self.fan_out(self.users.get(target_id), event, data, event_id)
        elif target == "room":
            self.fan_out(self.rooms.get(target_id), event, data)
        elif target == "all":
            self.fan_out(self.sockets, event, data)
        else:
            return
        EVENTS_RECEIVED.labels(target).inc()

    def fan_out(self, conns: Collection[Connection] | None, event: str, data: Any,
                event_id: int | None = None) -> None:
        if not conns:
            return
        framed = protocol.framed(protocol.encode(event, data, event_id))
        slow = [conn for conn in conns if not conn.deliver(framed, event_id)]
        EVENTS_DELIVERED.labels(event).inc(len(conns) - len(slow))
        for conn in slow:
            self.closed_too_slow += 1
            self.unregister(conn)
            conn.close_soon(protocol.TOO_SLOW, "too slow")

    def _seen(self, event_id: Any) -> bool:
        if not isinstance(event_id, int):
            return False
        if event_id in self._recent:
            return True
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        return False

    def _internal(self, event: str, target: str, target_id: Any, data: Any) -> None:
        # ``account:status`` (set_user_status): a user who is no longer active loses every socket.
        if (event == "account:status" and target == "user" and isinstance(data, dict)
                and data.get("status") != "active"):
            self.disconnect_user(target_id, protocol.FORBIDDEN, "account not active")

    def disconnect_user(self, user_id: int, code: int, message: str) -> None:
        for conn in list(self.users.get(user_id, ())):
            self.unregister(conn)
            conn.close_soon(code, message)

    # -- heartbeat and token expiry -------------------------------------------------------------

    def close_expired(self, now: float) -> int:
        """Close (4401) the sockets whose token, plus the grace, ran out by ``now`` (wall clock)."""
        expired = [conn for conn in self.sockets if conn.expires_at <= now]
        for conn in expired:
            self.unregister(conn)
            conn.close_soon(protocol.UNAUTHORIZED, "token expired")
        return len(expired)

    def beat(self, now: float) -> int:
        """A heartbeat step for every socket (``now``: loop time); drops the silent ones."""
        silent = [conn for conn in self.sockets if not conn.heartbeat(now, self.heartbeat)]
        for conn in silent:
            self.dropped_silent += 1
            self.unregister(conn)
            conn.drop()
        return len(silent)

    async def _sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(SWEEP_SECONDS, self.heartbeat / 2)
        next_beat = loop.time() + self.heartbeat / 2
        while True:
            await asyncio.sleep(tick)
            try:
                self.close_expired(time.time())
                if loop.time() >= next_beat:
                    next_beat = loop.time() + self.heartbeat / 2
                    self.beat(loop.time())
            except Exception:  # a bug here must not end the sweeping for good
                log.exception("socket sweep failed")

    # -- following the events channel ----------------------------------------------------------

    def start(self) -> None:
        self.subscriber.follow(self.channel, self)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(),
                                                               name="ws-sweep")

    async def stop(self) -> None:
        self.subscriber.unfollow(self.channel, self)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def on_message(self, data: bytes) -> None:
        self.route(data)

    def on_subscribed(self) -> None:
        """Following the channel again after losing it: events published meanwhile never reached
        this instance's sockets, so each is closed with 1001 and resumes from its last event id
        (the replay reads the outbox, which has them all). Only after a loss: nothing was missed
        on the first subscription.

        The sockets leave the hub now, not when the closing task runs: an event of the new
        subscription routed to them first would raise their client's resume mark past an event
        published while the subscriber was away, which the resume then might not look back to."""
        if self._lost:
            self._lost = False
            self.resumed_after_loss += 1
            conns = self._detach()
            task = asyncio.get_running_loop().create_task(
                self._close(conns, protocol.GOING_AWAY, protocol.RESUME_HINT))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def on_lost(self) -> None:
        self._lost = True

    @property
    def subscribed(self) -> asyncio.Event:
        """Set while the process's subscriber follows every channel (this hub's included)."""
        return self.subscriber.subscribed

    @property
    def running(self) -> bool:
        """True while the process's subscriber runs (it ends on shutdown)."""
        return self.subscriber.running

    async def close_all(self, code: int, message: str) -> None:
        """Close every socket, authenticated or not (shutdown)."""
        await self._close(self._detach(), code, message)

    def _detach(self) -> list[Connection]:
        """Every authenticated socket, out of the hub: no event reaches them any more."""
        conns = list(self.sockets)
        for conn in conns:
            self.unregister(conn)
        return conns

    async def _close(self, conns: list[Connection], code: int, message: str) -> None:
        pending = [ws.close(code=code, message=message.encode()) for ws in list(self.pending)]
        closing = [conn.close(code, message) for conn in conns]
        await asyncio.gather(*pending, *closing, return_exceptions=True)


def _discard(index: dict[int, set[Connection]], key: int, conn: Connection) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(conn)
        if not members:
            del index[key]
