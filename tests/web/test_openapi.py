"""The OpenAPI document: generated from the handlers' models, complete, and served with its UI."""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web
from pydantic import Field

from common.config import Settings
from web.app import create_app
from web.auth import require_admin, require_user
from web.docs import document
from web.openapi import auth_of, build_document, describe, description_of, operations, undescribed
from web.routes import API_PREFIXES
from web.schemas import Model, PageQuery


class ThingBody(Model):
    name: str
    size: int = 1
    amount: Decimal = Field(Decimal(1), gt=0, decimal_places=2)


class Thing(Model):
    id: int
    name: str
    balance: Decimal


@describe("make a thing", body=ThingBody, response=Thing, status=201, statuses={409: "taken"})
@require_user
async def _make(request: web.Request) -> web.Response:
    raise NotImplementedError


@require_admin
@describe("list things", query=PageQuery, response=Thing, list=True, tags=["things"])
async def _things(request: web.Request) -> web.Response:
    raise NotImplementedError


async def _bare(request: web.Request) -> web.Response:
    raise NotImplementedError


@describe("all kinds, unpaginated", response=Thing, list=True)
async def _kinds(request: web.Request) -> web.Response:
    raise NotImplementedError


def _doc() -> dict:
    ops = operations([
        ("POST", "/api/things", _make),
        ("GET", "/api/things", _things),
        ("GET", "/api/things/{id:\\d+}", _bare),
        ("GET", "/api/kinds", _kinds),
    ])
    return build_document(ops, title="t", version="1", info="i")


def test_describe_survives_the_auth_wrappers_in_either_order() -> None:
    assert description_of(_make).summary == "make a thing"
    assert description_of(_things).summary == "list things"
    assert auth_of(_make) == "user"
    assert auth_of(_things) == "admin"
    assert description_of(_bare) is None
    assert undescribed([("GET", "/x", _bare), ("GET", "/y", _make)]) == ["GET /x"]


def test_body_response_envelope_errors_and_security() -> None:
    doc = _doc()
    post = doc["paths"]["/api/things"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ThingBody"
    }
    ok = post["responses"]["201"]["content"]["application/json"]["schema"]
    assert ok["properties"]["data"] == {"$ref": "#/components/schemas/Thing"}
    assert ok["properties"]["success"] == {"const": True}
    assert "pagination" not in ok["properties"]
    assert set(post["responses"]) == {"201", "400", "401", "403", "409", "413", "415", "422"}
    assert post["responses"]["409"]["description"] == "taken"
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    assert post["security"] == [{"bearerAuth": []}]
    body = doc["components"]["schemas"]["ThingBody"]
    assert body["required"] == ["name"] and body["properties"]["size"]["default"] == 1
    # Money is a JSON number both ways (pydantic alone would say "string" for output).
    amount = body["properties"]["amount"]
    assert amount["type"] == "number" and amount["exclusiveMinimum"] == 0
    assert doc["components"]["schemas"]["Thing"]["properties"]["balance"]["type"] == "number"


def test_list_query_parameters_pagination_and_path_parameters() -> None:
    doc = _doc()
    get = doc["paths"]["/api/things"]["get"]
    params = {p["name"]: p for p in get["parameters"]}
    assert params["page"]["in"] == "query" and params["page"]["required"] is False
    assert params["limit"]["schema"]["maximum"] == 100
    ok = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["properties"]["data"] == {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}}
    assert "pagination" in ok["required"]
    kinds = doc["paths"]["/api/kinds"]["get"]["responses"]["200"]["content"]["application/json"]
    assert kinds["schema"]["properties"]["data"]["type"] == "array"
    assert "pagination" not in kinds["schema"]["properties"]
    assert get["tags"] == ["things"]
    one = doc["paths"]["/api/things/{id}"]["get"]
    assert one["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    ]
    assert one["security"] == []
    assert set(one["responses"]) == {"200", "404"}


def test_operation_ids_are_unique() -> None:
    ids = [
        op["operationId"]
        for item in document()["paths"].values()
        for op in item.values()
    ]
    assert len(ids) == len(set(ids))


def test_every_served_route_is_in_the_document(settings: Settings) -> None:
    """Nothing the app answers is missing from the document, and nothing documented is absent."""
    served = set()
    for route in create_app(settings).router.routes():  # routes exist before the app starts
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path.startswith(
                ("/api/docs/", f"{API_PREFIXES[1]}/", "/console/assets/")) or path == "/console":
            continue  # HEAD mirrors GET; /api/v1 mirrors /api; the UIs' own files and redirect
        served.add((route.method, path))
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
    }
    assert served == documented


async def test_openapi_json_is_served_under_both_prefixes(client) -> None:  # type: ignore[no-untyped-def]
    for prefix in API_PREFIXES:
        resp = await client.get(f"{prefix}/openapi.json")
        assert resp.status == 200
        assert resp.content_type == "application/json"
        doc = await resp.json()
        assert doc["openapi"] == "3.1.0"
        assert "/api/offers" in doc["paths"] and "/health" in doc["paths"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_docs_page_uses_only_its_own_assets(client) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get("/api/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "http://" not in page and "https://" not in page
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    for src in ("/api/docs/assets/swagger-ui-bundle.js", "/api/docs/assets/swagger-ui.css",
                "/api/docs/init.js"):
        assert src in page
        asset = await client.get(src)
        assert asset.status == 200, src
        assert len(await asset.read()) > 10
    init = await (await client.get("/api/docs/init.js")).text()
    assert '"/api/openapi.json"' in init and "validatorUrl: null" in init
    assert (await client.get("/api/docs/assets/../../secrets")).status == 404
    assert (await client.get("/api/docs/assets/index.html")).status == 404

