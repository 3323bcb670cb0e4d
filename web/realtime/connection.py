"""One authenticated socket: its user, its rooms, and a bounded send queue.

Frames are WebSocket-framed once per event by the hub (server frames are neither masked nor
compressed, so the bytes are the same for every socket) and written straight to the transport
while the socket keeps up. When the transport's buffer passes ``WRITE_HIGH_WATER`` the frames
wait in a bounded queue, drained by a writer task that waits for the kernel to take the bytes.
The hub never awaits a socket: when the queue is full the client is too slow and is closed
(``TOO_SLOW``) instead of buffering without limit or slowing the others. Frames leave in the
order they were delivered: the direct path is taken only while the queue is empty.

An idle socket should cost little beyond aiohttp's own state (docs/performance.md "WebSockets"):
the queue exists only while frames wait, the rooms are a shared empty set until a join, and the
token's expiry and the heartbeat are numbers the hub's sweep reads rather than timers per socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from web.realtime import protocol

log = logging.getLogger(__name__)
# How long a close handshake may take before the transport is dropped.
CLOSE_TIMEOUT = 2.0
# Bytes the transport may hold for a socket before its frames queue instead.
WRITE_HIGH_WATER = 65_536
# An empty, final, unmasked ping frame (RFC 6455 5.5.2): the same bytes for every socket.
PING = b"\x89\x00"
# Shared: since Python 3.10 every ``frozenset()`` call makes a new 216-byte object.
NO_IDS: frozenset[int] = frozenset()


class Connection:
    __slots__ = (
        "__weakref__",
        "_frames",
        "_writer",
        "close_task",
        "closing",
        "expires_at",
        "floor",
        "held",
        "limit",
        "pinged",
        "rooms",
        "seen",
        "skip",
        "stream",
        "user_id",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, stream: AbstractStreamWriter, user_id: int, *,
                 limit: int) -> None:
        self.ws = ws
        # What ``ws.prepare`` returned: its ``drain`` is the backpressure, its ``transport`` the
        # socket's (the request's, which is not kept here).
        self.stream = stream
        self.user_id = user_id
        # Replaced, not mutated, on join and leave (Hub): most sockets never join a room.
        self.rooms: frozenset[int] = NO_IDS
        self.limit = limit
        # While the missed events are replayed, live events wait here (see ``release``).
        self.held: list[tuple[int | None, bytes]] | None = []
        # User events the client already has: those replayed, and (after ``sync:refetch``) every
        # id up to the refetch point. Pub/sub may still bring them after the replay.
        self.skip: frozenset[int] = NO_IDS
        self.floor = 0
        self.closing = False
        self.close_task: asyncio.Task[None] | None = None
        # When the token (plus the grace) runs out, in time.time(); the hub's sweep closes it then.
        self.expires_at = float("inf")
        # The heartbeat (loop time): the last frame the client sent, and the ping that waits for
        # an answer (None when none does). See ``heartbeat``.
        self.seen = asyncio.get_running_loop().time()
        self.pinged: float | None = None
        self._frames: deque[bytes] | None = None  # made when a frame has to wait
        self._writer: asyncio.Task[None] | None = None

    def deliver(self, framed: bytes, event_id: int | None = None) -> bool:
        """Send or queue one framed event without waiting; False when the client is too slow."""
        if self.closing:
            return True
        if event_id is not None and (event_id <= self.floor or event_id in self.skip):
            return True
        if self.held is not None:
            self.held.append((event_id, framed))
            return len(self.held) <= self.limit
        transport = self.stream.transport
        if transport is None or transport.is_closing():
            return True  # the reader sees the end of the socket and unregisters it
        if not self._frames and transport.get_write_buffer_size() <= WRITE_HIGH_WATER:
            transport.write(framed)
            return True
        if self._frames is None:
            self._frames = deque()
        elif len(self._frames) >= self.limit:
            return False
        self._frames.append(framed)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return True

    def send(self, payload: bytes) -> bool:
        """Deliver a reply of this socket's own (``pong``, ``error``...)."""
        return self.deliver(protocol.framed(payload))

    def release(self, *, replayed: frozenset[int], floor: int) -> bool:
        """After the replay: deliver the events held meanwhile, minus those the client has."""
        self.skip, self.floor = replayed, floor
        held, self.held = self.held or [], None
        return all(self.deliver(framed, event_id) for event_id, framed in held)

    async def _write(self) -> None:
        """Drain the queue at the pace the client reads; exits when it is empty."""
        frames = self._frames
        assert frames is not None
        try:
            while frames and not self.closing:
                transport = self.stream.transport
                if transport is None or transport.is_closing():
                    frames.clear()
                    return
                if transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                    await self.stream.drain()
                    continue
                transport.write(frames.popleft())
        except (ConnectionError, RuntimeError):  # the peer went away; the reader sees it too
            frames.clear()
        finally:
            self._writer = None
            if not frames:
                self._frames = None  # an idle socket holds no queue

    def heartbeat(self, now: float, interval: float) -> bool:
        """One step of the heartbeat, every ``interval / 2`` (the hub's sweep), as aiohttp's own
        would do it with a timer per socket: ping a client silent for ``interval``; False when it
        sent nothing since the previous ping (a pong or any frame counts as an answer)."""
        if self.pinged is not None:
            if self.seen <= self.pinged:
                return False
            self.pinged = None
        if now - self.seen >= interval and not self.closing:
            transport = self.stream.transport
            if transport is not None and not transport.is_closing():
                transport.write(PING)
                self.pinged = now
        return True

    def drop(self) -> None:
        """End a peer that stopped answering: close the TCP connection (the read loop ends and
        cleans up), as aiohttp does when a pong does not come."""
        self.closing = True
        self.stop()
        transport = self.stream.transport
        if transport is not None:
            transport.close()

    def close_soon(self, code: int, message: str) -> None:
        """Close from outside the socket's own task (hub, timers); idempotent."""
        if self.closing:
            return
        self.closing = True
        self.close_task = asyncio.get_running_loop().create_task(self.close(code, message))

    async def close(self, code: int, message: str) -> None:
        self.closing = True
        self.stop()
        try:
            closing = self.ws.close(code=code, message=message.encode())
            await asyncio.wait_for(closing, CLOSE_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            # A peer that reads nothing never takes the close frame: drop the TCP connection.
            transport = self.stream.transport
            if transport is not None:
                transport.abort()

    def stop(self) -> None:
        """Stop the writer (the socket is closing or closed)."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
