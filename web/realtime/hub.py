"""The hub of one web process: its sockets, and the routing of events to them.

The hub follows ``common.redis.events_channel`` through the process's one Redis subscriber
(``web.pubsub``, which reconnects with capped exponential backoff when Redis goes away) and routes
each outbox event (``common.events.Event.wire``) to the sockets of ``user:{id}``, ``room:{id}``
or everyone it holds. The outbox sweep may publish an event twice: the hub drops an id it has
already routed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
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


class Hub:
    def __init__(self, subscriber: Subscriber, channel: str, *, max_per_user: int) -> None:
        self.subscriber = subscriber
        self.channel = channel
        self.max_per_user = max_per_user
        self.sockets: set[Connection] = set()
        self.users: dict[int, set[Connection]] = {}
        self.rooms: dict[int, set[Connection]] = {}
        # Upgraded sockets that have not authenticated yet (closed on shutdown too).
        self.pending: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.closed_too_slow = 0
        self._recent: OrderedDict[int, None] = OrderedDict()
        # Set when the subscriber lost the channel; the next subscription makes sockets resume.
        self._lost = False
        self.resumed_after_loss = 0
        self._closing: set[asyncio.Task[None]] = set()

    # -- registry -------------------------------------------------------------------------------

    def register(self, conn: Connection) -> bool:
        """Add an authenticated socket; False when its user is at the per-user cap."""
        mine = self.users.setdefault(conn.user_id, set())
        if len(mine) >= self.max_per_user:
            if not mine:
                del self.users[conn.user_id]
            return False
        mine.add(conn)
        self.sockets.add(conn)
        return True

    def unregister(self, conn: Connection) -> None:
        self.sockets.discard(conn)
        _discard(self.users, conn.user_id, conn)
        for room_id in conn.rooms:
            _discard(self.rooms, room_id, conn)

    def join(self, conn: Connection, room_id: int) -> None:
        if conn in self.sockets:
            conn.rooms.add(room_id)
            self.rooms.setdefault(room_id, set()).add(conn)

    def leave(self, conn: Connection, room_id: int) -> None:
        conn.rooms.discard(room_id)
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

    def fan_out(self, conns: set[Connection] | None, event: str, data: Any,
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

    # -- following the events channel ----------------------------------------------------------

    def start(self) -> None:
        self.subscriber.follow(self.channel, self)

    def stop(self) -> None:
        self.subscriber.unfollow(self.channel, self)

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
