"""The AsyncAPI 3.0 document of ``/ws`` (``GET /api/asyncapi.json``), generated from the frame
catalog (common/event_catalog.py) the hub and ``emit`` are held to, with the schemas made like the
OpenAPI document's (web/openapi.py: money a JSON number, timestamps the API's form).

In AsyncAPI an operation's ``action`` is the application's: ``send`` is a frame the server sends
(to the audience in ``x-audience``), ``receive`` one it takes from the client.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from common.event_catalog import CLIENT, SERVER, Frame
from web.openapi import _rename_refs, _Schemas, component_names
from web.realtime import protocol

SCHEMA_REF = "#/components/schemas/{model}"
CLOSE_CODES = {
    str(int(protocol.GOING_AWAY)): "the server is shutting down: reconnect (with since)",
    str(int(protocol.MESSAGE_TOO_BIG)): "a frame over WS_MAX_FRAME_BYTES",
    str(protocol.TRY_AGAIN): "PostgreSQL or Redis was unavailable while the socket opened: "
                             "reconnect after a short wait (with since)",
    str(protocol.UNAUTHORIZED): "no, bad or expired token, or no auth frame in time",
    str(protocol.FORBIDDEN): "the account is suspended or banned",
    str(protocol.TOO_SLOW): "the client did not read its events fast enough: reconnect with since",
    str(protocol.TOO_MANY): "the user already has WS_MAX_SOCKETS_PER_USER sockets",
}
DESCRIPTION = (
    "Frames are JSON text `{event, data}`; a user's own events also carry `id` (the highest "
    "one held is the `since` to resume from). Authenticate with `?token=` on the upgrade or an "
    "`auth` frame within WS_AUTH_TIMEOUT; the server answers `ready`, then replays the user's "
    "events after `since`, and those below it published late, so a resume may repeat events: "
    "drop them by `id` (or it sends `sync:refetch` when it no longer holds them all). "
    "docs/api.md \"WebSocket\" "
    "explains resume and the close codes (`x-close-codes`)."
)


def message_id(event: str) -> str:
    """``chat:message`` -> ``chatMessage``."""
    first, *rest = re.split(r"[^A-Za-z0-9]+", event)
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


def _frame_schema(frame: Frame, data: dict[str, Any], *, server: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"event": {"const": frame.name}, "data": data}
    if server and frame.audience == "user":
        properties["id"] = {"type": "integer", "minimum": 1,
                            "description": "the event's id: resume with since=<id>"}
    return {"type": "object", "required": ["event", "data"], "properties": properties}


def _operation(frame: Frame, action: str) -> dict[str, Any]:
    mid = message_id(frame.name)
    out: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": "#/channels/socket"},
        "summary": frame.summary,
        "messages": [{"$ref": f"#/channels/socket/messages/{mid}"}],
    }
    if action == "send":
        out["x-audience"] = frame.audience
    return out


def build_document(*, version: str) -> dict[str, Any]:
    server = {n: f for n, f in SERVER.items() if f.audience != "internal"}
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((f.model, "serialization") for f in server.values()),
        *((f.model, "validation") for f in CLIENT.values()),
    ]
    refs, top = models_json_schema(wanted, ref_template=SCHEMA_REF, schema_generator=_Schemas)
    names = component_names(top.get("$defs", {}))
    schemas = {names[k]: {**_rename_refs(v, names), "title": names[k]}
               for k, v in top.get("$defs", {}).items()}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    sides: tuple[tuple[dict[str, Frame], JsonSchemaMode, str], ...] = (
        (server, "serialization", "send"), (CLIENT, "validation", "receive"))
    for frames, mode, action in sides:
        for frame in frames.values():
            mid = message_id(frame.name)
            data = _rename_refs(refs[(frame.model, mode)], names)
            messages[mid] = {
                "name": frame.name,
                "title": frame.name,
                "summary": frame.summary,
                "contentType": "application/json",
                "payload": _frame_schema(frame, data, server=action == "send"),
            }
            operations[f"{action}{mid[:1].upper()}{mid[1:]}"] = _operation(frame, action)
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "SaveBucks real-time events", "version": version,
                 "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {"api": {"host": "localhost", "protocol": "ws",
                            "description": "the web process's own host and port (wss behind TLS)"}},
        "channels": {"socket": {
            "address": "/ws",
            "title": "The user's socket",
            "description": DESCRIPTION,
            "messages": {mid: {"$ref": f"#/components/messages/{mid}"} for mid in messages},
            "bindings": {"ws": {"method": "GET", "query": {
                "type": "object",
                "properties": {
                    "token": {"type": "string", "description": "an access token"},
                    "since": {"type": "string", "pattern": "^[0-9]{1,19}$",
                              "description": "the last event id seen"},
                }}}},
            "x-close-codes": CLOSE_CODES,
        }},
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


@functools.cache
def document_bytes(version: str) -> bytes:
    from web.envelope import dumps

    return dumps(build_document(version=version))
