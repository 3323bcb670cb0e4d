"""Rules the served document keeps for every operation and schema, today's and those added later:
unique component names, operation ids pinned across releases, request bodies with valid examples,
money with its step, links from ids to the operations that take them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from common.errors import CODES
from tests.fixtures.admin import admin, admin_headers, api, member, member_headers  # noqa: F401
from web.docs import all_operations, document
from web.openapi import openapi_path

PINNED = Path(__file__).with_name("operation_ids.json")
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """``schema`` with the document's components beside it (``$ref``s resolve)."""
    return jsonschema_rs.validator_for({**schema, "components": doc["components"]})


def test_every_component_is_named_once_and_titled_by_its_name(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert {name: schema.get("title") for name, schema in schemas.items()} == {
        name: name for name in schemas}
    assert all(name.isidentifier() for name in schemas)


def test_operation_ids_are_the_pinned_ones() -> None:
    """An id is a generated client's function name: once released it never changes. A new
    operation's id is added to operation_ids.json (the message prints the line)."""
    pinned = json.loads(PINNED.read_text())
    now = {f"{op.method} {openapi_path(op.path)}": op.operation_id for op in all_operations()}
    changed = {k: (v, now[k]) for k, v in pinned.items() if k in now and now[k] != v}
    assert changed == {}, "operation ids changed (pinned, now)"
    assert [k for k in pinned if k not in now] == [], "operations gone: a breaking change"
    new = {k: v for k, v in now.items() if k not in pinned}
    assert new == {}, f"pin the new operations in {PINNED.name}: {json.dumps(new)}"
    assert len(set(now.values())) == len(now)


def test_every_request_body_has_examples_the_schema_and_the_model_accept(
    doc: dict[str, Any]
) -> None:
    seen = 0
    for op in all_operations():
        model = op.description.body
        if model is None:
            continue
        schema = doc["components"]["schemas"][model.__name__]
        assert schema.get("examples"), f"{model.__name__} has no examples"
        validator = _validator(doc, schema)
        for example in schema["examples"]:
            assert validator.is_valid(example), (model.__name__, example)
            model.model_validate(example)
            seen += 1
    assert seen


def _request_schemas(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property schema a client sends: bodies' (components) and parameters'."""
    names = set()
    for _, _, op in _operations(doc):
        for media in op.get("requestBody", {}).get("content", {}).values():
            names.add(media["schema"]["$ref"].rsplit("/", 1)[-1])
        for param in op.get("parameters", ()):
            yield param["name"], param["schema"]
    for name in sorted(names):
        for prop, schema in doc["components"]["schemas"][name].get("properties", {}).items():
            yield f"{name}.{prop}", schema


def _alternatives(schema: dict[str, Any]) -> list[dict[str, Any]]:
    if "anyOf" in schema:
        return [alt for s in schema["anyOf"] for alt in _alternatives(s)]
    return [] if schema.get("type") == "null" else [schema]


def test_request_numbers_and_strings_say_what_the_server_takes(doc: dict[str, Any]) -> None:
    """Money has its step and bounds; a string says which characters (at least: no NUL)."""
    problems = []
    for where, schema in _request_schemas(doc):
        for alt in _alternatives(schema):
            if alt.get("type") == "number" and not ({"multipleOf", "maximum"} <= alt.keys()):
                problems.append(f"{where}: a number without multipleOf and maximum")
            if alt.get("type") == "string" and "pattern" not in alt and "enum" not in alt \
                    and "format" not in alt and "const" not in alt:
                problems.append(f"{where}: a string without a pattern")
    assert problems == []


def test_error_codes_are_a_closed_set(doc: dict[str, Any]) -> None:
    code = doc["components"]["schemas"]["ErrorEnvelope"]["properties"]["code"]
    assert code["enum"] == sorted(CODES)
    assert {"invalid", "insufficient_funds", "below_minimum", "claim_exists"} <= CODES


def _item_takers(doc: dict[str, Any]) -> dict[str, set[str]]:
    """collection (``/api`` path without ``/admin``) -> ids of operations taking one of its ids."""
    takers: dict[str, set[str]] = {}
    for _, path, op in _operations(doc):
        parts = path.split("/")
        params = [i for i, p in enumerate(parts) if p.startswith("{")]
        if len(params) == 1 and (parts[params[0]] == "{id}" or parts[params[0]].endswith("Id}")):
            collection = "/".join(parts[: params[0]]).replace("/admin/", "/", 1)
            takers.setdefault(collection, set()).add(op["operationId"])
    return takers


def test_creating_and_listing_operations_link_to_those_taking_their_ids(
    doc: dict[str, Any]
) -> None:
    takers = _item_takers(doc)
    ids = {op["operationId"]: (path, op) for _, path, op in _operations(doc)}
    linked = set()
    for method, path, op in _operations(doc):
        collection = path.replace("/admin/", "/", 1)
        if "{" in path or collection not in takers:
            continue
        status, response = next(iter(op["responses"].items()))
        data = response.get("content", {}).get("application/json", {}).get("schema", {}) \
            .get("properties", {}).get("data", {})
        if method == "POST" and status not in ("201", "202"):
            continue
        if method == "GET" and data.get("type") != "array":
            continue
        links = response.get("links", {})
        assert set(links) == takers[collection], f"{method} {path}"
        for link in links.values():
            target_path, _ = ids[link["operationId"]]
            (name,) = link["parameters"]
            assert "{" + name + "}" in target_path
        linked.add(collection)
    # The resources a client creates or lists, then acts on.
    assert {"/api/payments", "/api/sales", "/api/notifications", "/api/offers", "/api/claims",
            "/api/users"} <= linked


_BAD = {"boolean": ("null", "1", "yes", "TRUE"),
        "date-time": ("0.5", "1700000000", "2024-01-01T00:00:00", "tomorrow")}


def _strict_parameters(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(path, name, kind, auth) of every query parameter typed boolean or date-time."""
    for method, path, op in _operations(doc):
        if method != "GET" or "{" in path:
            continue
        for param in op.get("parameters", ()):
            if param["in"] != "query":
                continue
            for alt in _alternatives(param["schema"]):
                kind = "boolean" if alt.get("type") == "boolean" else alt.get("format")
                if kind in _BAD:
                    yield path, param["name"], kind, "admin" if "/admin/" in path else "user"


async def test_query_booleans_and_timestamps_take_only_their_type(  # type: ignore[no-untyped-def]
    api, admin_headers: dict[str, str], member_headers: dict[str, str], doc: dict[str, Any]
) -> None:
    """What the document types strictly the server refuses otherwise (``until=0.5`` was read as
    half a second after 1970, ``unread=null`` as false)."""
    checked = []
    for path, name, kind, auth in _strict_parameters(doc):
        headers = admin_headers if auth == "admin" else member_headers
        for bad in _BAD[kind]:
            resp = await api.get(path, params={name: bad}, headers=headers)
            assert resp.status == 400, (path, name, bad, resp.status)
            assert (await resp.json())["code"] == "bad_request"
        good = "true" if kind == "boolean" else "2024-01-01T00:00:00Z"
        assert (await api.get(path, params={name: good}, headers=headers)).status == 200
        checked.append(f"{path}?{name}")
    assert {"/api/notifications?unread", "/api/admin/audit-log?until"} <= set(checked)


async def test_every_secured_operation_refuses_a_request_without_a_valid_token(  # type: ignore[no-untyped-def]
    api, member_headers: dict[str, str], doc: dict[str, Any]
) -> None:
    """What schemathesis's ``ignored_auth`` would check, for every operation the document secures:
    no token, a malformed one, and (admin routes) a member's, are refused before anything else."""
    checked = 0
    for method, path, op in _operations(doc):
        if not op["security"]:
            continue
        url = path.replace("{id}", "1").replace("{roomId}", "1")
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            resp = await api.request(method, url, headers=headers)
            assert resp.status == 401, (method, path, resp.status)
        if "/admin/" in path:
            resp = await api.request(method, url, headers=member_headers)
            assert resp.status == 403, (method, path, resp.status)
        checked += 1
    assert checked > 40
