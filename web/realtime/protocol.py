"""The wire format of ``/ws`` (docs/api.md "WebSocket"): JSON text frames
``{"event", "data"}``, with ``"id"`` on events that belong to a user, and the close codes."""

from __future__ import annotations

import struct
from typing import Any

import orjson
from aiohttp import WSCloseCode

from common.event_catalog import known

# Close codes. 1xxx are the standard ones aiohttp names; 4xxx mirror the HTTP statuses.
GOING_AWAY = WSCloseCode.GOING_AWAY  # the server is shutting down: reconnect elsewhere
# The reason sent with GOING_AWAY: the client reconnects (any instance) with ``since`` = the last
# event id it saw, and misses nothing.
SHUTDOWN_HINT = "server shutting down: reconnect with since=<last event id>"
RESUME_HINT = "events interrupted: reconnect with since=<last event id>"
MESSAGE_TOO_BIG = WSCloseCode.MESSAGE_TOO_BIG  # a frame over ``WS_MAX_FRAME_BYTES``
TRY_AGAIN = 1013  # a dependency (PostgreSQL, Redis) was down while the socket opened; reconnect
UNAUTHORIZED = 4401  # no, bad or expired token; no auth frame in time
FORBIDDEN = 4403  # the account is suspended or banned
TOO_SLOW = 4408  # the client did not read its events fast enough; reconnect with ``since``
TOO_MANY = 4429  # the user already has ``WS_MAX_SOCKETS_PER_USER`` sockets (all instances)

# Sent instead of a replay when the missed events are no longer all held.
REFETCH = "sync:refetch"
# Events that steer the web processes (web/account_gate.py, the hub) and never reach a client.
INTERNAL_EVENTS = frozenset({"account:status", "account:role"})
# Events sent to admins only (they name other members): a resume replays them only to a socket
# whose token is an admin's now, never to a member who was an admin when they were sent.
ADMIN_EVENTS = frozenset({"risk:flagged"})


class FrameError(Exception):
    """A client frame the server cannot act on; answered with an ``error`` event."""

    def __init__(self, message: str, code: str = "bad_frame") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def parse_frame(raw: object) -> tuple[str, dict[str, Any]]:
    """``(event, data)`` of a client text frame; ``data`` defaults to ``{}``."""
    if not isinstance(raw, str):
        raise FrameError("Frames must be JSON text")
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError("Frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("Frame must be a JSON object")
    event, data = frame.get("event"), frame.get("data", {})
    if not isinstance(event, str) or not event:
        raise FrameError("Frame needs an 'event' string")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrameError("'data' must be an object", "invalid")
    return event, data


def encode(event: str, data: Any, event_id: int | None = None) -> bytes:
    """A server frame as UTF-8 JSON, ready to send as a text frame (of an event the catalog
    describes)."""
    known(event)
    if event_id is None:
        return orjson.dumps({"event": event, "data": data})
    return orjson.dumps({"event": event, "data": data, "id": event_id})


def framed(payload: bytes) -> bytes:
    """A final, unmasked, uncompressed text frame (RFC 6455 5.2) around ``payload``.

    Server frames are the same bytes for every socket, so the hub frames an event once and
    writes it to each transport (the sockets are opened with ``compress=False``).
    """
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65_536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def error(message: str, code: str) -> bytes:
    return encode("error", {"message": message, "code": code})
