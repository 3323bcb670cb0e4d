"""Malformed bodies on every write endpoint: each answers a 4xx envelope and stores nothing.

The endpoints come from the OpenAPI document (every operation with a request body), so a new write
endpoint is covered the day it is described. 16 kinds of malformed body each: well over 200 cases.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.db import Base
from common.models.offers import Offer
from tests.fixtures.factories import auth_headers, make_user
from web.docs import document

JSON = "application/json"
Body = tuple[bytes, str]  # raw body, content type


def _fields(schema: dict[str, Any], components: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The fields to fill (the required ones, else all) and whether any is required."""
    ref = schema.get("$ref", "")
    model = components[ref.rsplit("/", 1)[-1]] if ref else schema
    names = model.get("required") or list(model.get("properties", {}))
    return {name: model["properties"][name] for name in names}, bool(model.get("required"))


def _fill(fields: dict[str, Any], value: Callable[[str], str]) -> bytes:
    return ("{" + ", ".join(f'"{name}": {value(name)}' for name in fields) + "}").encode()


def malformed(fields: dict[str, Any], required: bool, max_bytes: int) -> dict[str, Body]:
    """Up to sixteen bodies no endpoint may accept, built from the endpoint's fields (``{}`` only
    where a field is required: a PATCH of nothing is a valid no-op)."""
    deep = "[" * 100 + "]" * 100
    bodies = {
        "truncated JSON": (b'{"a": ', JSON),
        "array, not object": (b"[]", JSON),
        "bare string": (b'"hello"', JSON),
        "empty": (b"", JSON),
        "text/plain": (_fill(fields, lambda n: '"x"'), "text/plain"),
        "form encoded": (b"a=1&b=2", "application/x-www-form-urlencoded"),
        "nested 100 deep": (_fill(fields, lambda n: deep), JSON),
        "huge numbers": (_fill(fields, lambda n: "1" + "0" * 400), JSON),
        "NaN": (_fill(fields, lambda n: "NaN"), JSON),
        "Infinity": (_fill(fields, lambda n: "-Infinity"), JSON),
        "3 decimals": (_fill(fields, lambda n: "10.005"), JSON),
        "negative": (_fill(fields, lambda n: "-5"), JSON),
        "zero": (_fill(fields, lambda n: "0"), JSON),
        "objects everywhere": (_fill(fields, lambda n: "{}"), JSON),
        "over the size limit": (
            json.dumps({"pad": "x" * (max_bytes + 1024)}).encode(), JSON
        ),
    }
    if required:
        bodies["fields missing"] = (b"{}", JSON)
    return bodies


def write_operations() -> list[tuple[str, str, dict[str, Any], bool]]:
    doc = document()
    components = doc["components"]["schemas"]
    out = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if "requestBody" in op:
                schema = op["requestBody"]["content"][JSON]["schema"]
                out.append((method.upper(), path, *_fields(schema, components)))
    return out


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar_one()
            for t in Base.metadata.sorted_tables
        }


@pytest.mark.committed
async def test_every_malformed_body_is_a_4xx_envelope_and_stores_nothing(
    live_client, committed: Engine, settings: Settings  # type: ignore[no-untyped-def]
) -> None:
    with Session(committed, expire_on_commit=False) as session:
        user = make_user(session, balance="50")
        admin = make_user(session, role="admin")
        offer = Offer(title="o", description="d", category="games", network="demo",
                      external_id="malformed-1", payout=Decimal(1), status="active")
        session.add(offer)
        session.commit()
    ids = {"id": str(offer.id)}
    before = _counts(committed)
    cases, wrong = 0, []
    for method, path, fields, required in write_operations():
        who = admin if path.startswith("/api/admin/") else user
        headers = {**auth_headers(settings, who), "Idempotency-Key": f"malformed-{cases}"}
        url = path.format(id=str(user.id) if "/users/" in path else ids["id"])
        for name, (raw, content_type) in malformed(fields, required, settings.max_body_bytes).items():
            cases += 1
            resp = await live_client.request(
                method, url, data=io.BytesIO(raw), headers={**headers, "Content-Type": content_type}
            )
            body = await resp.json() if resp.content_type == JSON else None
            if not 400 <= resp.status < 500 or not body or body.get("success") is not False:
                wrong.append(f"{method} {path} [{name}]: {resp.status} {body}")
    assert cases >= 200
    assert not wrong, "\n".join(wrong)
    assert _counts(committed) == before
