"""The AsyncAPI document of /ws: valid AsyncAPI 3.0, served, and describing every frame the server
sends or takes (common/event_catalog.py), which emit and the hub refuse to go beyond."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from common.event_catalog import CLIENT, SERVER, known
from tests.fixtures.npm import npm_tools  # noqa: F401
from web.asyncapi import build_document, message_id
from web.realtime import protocol
from web.realtime.handler import HANDLERS

ROOT = Path(__file__).resolve().parents[2]
# Where an event name is written in the code: emit(..., event="x:y"), an outbox row built in SQL
# ('x:y' AS event, or a literal beside the notification), emit_many's ("x:y", ...) tuples, the
# hub's own frames (protocol.encode("x"), error(...)) and f-strings such as f"account:{field}".
_NAMES = (re.compile(r'event=f?"([a-z_]+:[a-z_{}]+)"'), re.compile(r"'([a-z_]+:[a-z_]+)'"),
          re.compile(r'\(\s*"([a-z_]+:[a-z_]+)",'), re.compile(r'encode\(\s*"([a-z_:]+)"'))


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_document(version="1")


@pytest.mark.contract
def test_the_document_is_valid_asyncapi_3(doc: dict[str, Any], npm_tools: Path) -> None:
    schema = json.loads((npm_tools / "node_modules" / "@asyncapi" / "specs" / "schemas"
                         / "3.0.0-without-$id.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    assert [e.message for e in validator.iter_errors(doc)] == []
    broken = {**doc, "operations": {"x": {"action": "publish", "channel": {"$ref": "#/channels/socket"}}}}
    assert not validator.is_valid(broken)  # the schema really checks


def _names_in_code() -> set[str]:
    found = set()
    for folder in ("common", "web", "workers"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for pattern in _NAMES:
                found.update(pattern.findall(text))
    return found


def test_every_event_named_in_the_code_is_described(doc: dict[str, Any]) -> None:
    described = {m["name"] for m in doc["components"]["messages"].values()}
    internal = {n for n, f in SERVER.items() if f.audience == "internal"}
    names = _names_in_code()
    expanded = {n for n in names if "{" not in n}
    for pattern in (n for n in names if "{" in n):  # f"account:{field}": each name it can be
        prefix = pattern.split("{", 1)[0]
        assert any(name.startswith(prefix) for name in internal | described), pattern
    # Names of rate-limit buckets and Redis keys match the shape too: only event-like ones count.
    events = {n for n in expanded if n in SERVER or n in CLIENT or n.split(":")[0] in
              {"balance", "payment", "claim", "notification", "offer", "leaderboard", "account",
               "sync", "risk"}}
    assert events - described - internal == set()
    assert {"balance:updated", "notification:new", "payment:status", "chat:message"} <= events


def test_every_server_and_client_frame_is_in_the_document(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    for name, frame in SERVER.items():
        assert (message_id(name) in messages) is (frame.audience != "internal"), name
    assert set(HANDLERS) == set(CLIENT)
    assert {m["name"] for m in messages.values()} == {
        n for n, f in SERVER.items() if f.audience != "internal"} | set(CLIENT)
    assert protocol.REFETCH in SERVER
    assert set(doc["channels"]["socket"]["x-close-codes"]) == {
        "1001", "1009", "1013", "4401", "4403", "4408", "4429"}


def test_emit_and_the_hub_refuse_an_undescribed_event() -> None:
    with pytest.raises(ValueError, match="event_catalog"):
        known("payment:teleported")
    with pytest.raises(ValueError, match="event_catalog"):
        protocol.encode("payment:teleported", {})
    assert protocol.encode("pong", {}) == b'{"event":"pong","data":{}}'


async def test_the_document_is_served(client) -> None:  # type: ignore[no-untyped-def]
    for prefix in ("/api", "/api/v1"):
        resp = await client.get(f"{prefix}/asyncapi.json")
        assert resp.status == 200 and resp.content_type == "application/json"
        assert (await resp.json())["asyncapi"] == "3.0.0"
