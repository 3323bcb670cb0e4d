"""The OpenAPI 3.1 document, generated from the handlers' own pydantic models.

Each handler carries a ``Description`` set by ``@describe(...)`` (above or below
``@require_user``/``@require_admin``: ``functools.wraps`` copies the attribute, and the lookup
also follows ``__wrapped__``). ``build_document`` walks ``web.routes.api_routes()`` plus the
routes outside ``/api`` and emits, per operation: its id (``operation_id``, one rule), path and
query parameters, the request body, the success response inside the envelope of docs/api.md
"Envelope" (with ``pagination`` for lists, and links to the operations taking its ids,
``web.links``), the error responses with the error envelope (its ``code`` an enum), and the
security requirement read from the auth wrapper. Schemas come from ``models_json_schema`` over
every model at once, named after their class (``component_names``), in request form as the server
reads them (``_Schemas``: money steps and bounds, strings without NUL); the components the paths
do not reach (query and path models, inlined as parameters) are left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonSchemaMode,
    JsonSchemaValue,
    models_json_schema,
)
from pydantic_core import core_schema

from common.errors import CODES
from web.links import add_links
from web.schemas import PageQuery

H = TypeVar("H", bound=Callable[..., Any])
JSON = "application/json"
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
_DIGITS = {r"\d+", "[0-9]+"}
ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
_NO_NUL = r"^[^\x00]*$"
_FILLED = r"^[^\x00]*[^\s\x00][^\x00]*$"

# What every answer of a deprecated operation carries (web.deprecation).
RETIREMENT_HEADERS = {
    "Deprecation": "When this operation was deprecated (RFC 9745): `@` and Unix seconds",
    "Sunset": "When it stops answering (RFC 8594), an HTTP-date",
    "Link": 'What replaces it, when something does: `<url>; rel="successor-version"`',
}
_ERROR_TEXT = {
    400: "Malformed body or query",
    401: "Missing, invalid or expired access token",
    403: "Authenticated but not allowed",
    404: "Unknown resource, or one the caller may not see",
    409: "Conflict",
    413: "Request body too large",
    415: "Content-Type is not application/json",
    422: "Well-formed but invalid values (see `errors`)",
    429: "Rate limited (see `Retry-After`)",
    503: "A dependency is down",
}


class _Schemas(GenerateJsonSchema):
    """pydantic's schemas, except that a ``Decimal`` is a JSON number both ways.

    Money travels as a JSON number (docs/api.md "Envelope"): ``web.validation`` parses numbers into exact
    ``Decimal``s and ``web.envelope`` writes them back as numbers, whereas pydantic would describe
    a serialised ``Decimal`` as a string.
    """

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        out: JsonSchemaValue = {"type": "number"}
        for ours, theirs in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"),
                             ("lt", "exclusiveMaximum")):
            if schema.get(ours) is not None:
                out[theirs] = float(schema[ours])  # type: ignore[literal-required]
        places = schema.get("decimal_places")
        if places is not None:
            out["description"] = f"at most {places} decimals"
            if self.mode == "validation":
                # What the server refuses beyond; answers are not held to it, since a binary
                # float's remainder makes validators doubt e.g. 0.29 as a multiple of 0.01.
                out["multipleOf"] = float(Decimal(1).scaleb(-places))
            digits = schema.get("max_digits")
            if digits is not None and places is not None and "maximum" not in out:
                # max_digits bounds the magnitude: say so rather than let a client find out.
                out["maximum"] = float(Decimal(10) ** (digits - places) - Decimal(1).scaleb(-places))
                if "minimum" not in out and "exclusiveMinimum" not in out:
                    out["minimum"] = -out["maximum"]
        return out

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        out = super().str_schema(schema)
        if self.mode == "validation" and "pattern" not in out:
            # No body string may hold a NUL (web.validation.read_json); input models strip
            # whitespace (web.schemas.Model), so a required text must have something else.
            stripped = schema.get("strip_whitespace") is not False
            out["pattern"] = _FILLED if stripped and out.get("minLength", 0) > 0 else _NO_NUL
        return out


    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        out = super().datetime_schema(schema)
        if self.mode == "serialization":  # what web.envelope.iso writes (docs/api.md "Envelope")
            out["pattern"] = ISO_Z
            return out
        # What web.validation.query_errors lets through (timestamps are query parameters).
        return {"anyOf": [out, {"type": "string", "format": "date"}],
                "description": "an RFC 3339 date-time with an offset, or a date (its midnight, "
                               "UTC)"}


@dataclass(frozen=True)
class Header:
    """A required request header: its text and the schema of what the server takes."""

    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Description:
    """What the document says about one operation; see ``describe``."""

    summary: str
    description: str | None = None
    tags: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    list: bool = False
    paginated: bool | None = None
    status: int = 200
    statuses: Mapping[int, str] = field(default_factory=dict)
    headers: Mapping[str, Header] = field(default_factory=dict)
    envelope: bool = True
    media: str = JSON
    body_media: str = JSON


def describe(summary: str, **details: Any) -> Callable[[H], H]:
    """Attach a ``Description`` to a handler (see the fields of ``Description``).

    ``response`` is the model of ``data`` (``list=True``: an array of it); ``paginated`` says
    whether ``pagination`` comes with it, by default when ``query`` is a ``PageQuery``;
    ``statuses`` the error statuses beyond those the generator derives (body, query, auth);
    ``headers`` required request headers (``{"Idempotency-Key": Header(...)}``); ``envelope=False``
    for bodies that are not the API envelope (``/health``).
    """
    if "tags" in details:
        details["tags"] = tuple(details["tags"])
    description = Description(summary=summary, **details)

    def mark(handler: H) -> H:
        handler.openapi = description  # type: ignore[attr-defined]
        return handler

    return mark


def along_wrappers(handler: Any, attribute: str) -> Any:
    """``attribute`` of the handler or of the first function it wraps that has it (the marks of
    ``describe``, ``web.auth`` and ``web.deprecation`` survive each other's wrappers)."""
    seen = 0
    while handler is not None and seen < 8:
        value = getattr(handler, attribute, None)
        if value is not None:
            return value
        handler, seen = getattr(handler, "__wrapped__", None), seen + 1
    return None


def description_of(handler: Callable[..., Any]) -> Description | None:
    return along_wrappers(handler, "openapi")


def auth_of(handler: Callable[..., Any]) -> str | None:
    """``"user"``, ``"admin"`` or None, as ``web.auth``'s wrappers mark it."""
    return along_wrappers(handler, "auth")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # aiohttp's template, e.g. ``/api/offers/{id:\d+}``
    description: Description
    auth: str | None
    operation_id: str
    retired: Any = None  # a ``web.deprecation.Retirement``: the operation is deprecated


def openapi_path(template: str) -> str:
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", template)


def _path_parameters(op: Operation, defs: dict[str, Any], refs: dict[Any, Any]) -> list[dict]:
    declared = _model_properties(op.description.path, "validation", defs, refs)
    params = []
    for match in _PATH_PARAM.finditer(op.path):
        name, pattern = match.group(1), match.group(2)
        schema = declared.get(name, (None, False))[0]
        if schema is None:
            schema = {"type": "integer", "minimum": 0} if pattern in _DIGITS else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _model_properties(
    model: type[BaseModel] | None, mode: str, defs: dict[str, Any], refs: dict[Any, Any]
) -> dict[str, tuple[dict[str, Any], bool]]:
    """``{name: (schema, required)}`` of a flat model's fields (query and path models)."""
    if model is None:
        return {}
    ref = refs[(model, mode)]["$ref"]
    schema = defs[ref.rsplit("/", 1)[-1]]
    required = set(schema.get("required", ()))
    return {n: (s, n in required) for n, s in schema.get("properties", {}).items()}


def _query_parameters(op: Operation, defs: dict[str, Any], refs: dict[Any, Any]) -> list[dict]:
    return [
        {"name": name, "in": "query", "required": required, "schema": schema}
        for name, (schema, required) in _model_properties(
            op.description.query, "validation", defs, refs
        ).items()
    ]


def _header_parameters(op: Operation) -> list[dict]:
    return [
        {"name": name, "in": "header", "required": True, "description": header.description,
         "schema": dict(header.schema)}
        for name, header in op.description.headers.items()
    ]


def _paginated(d: Description) -> bool:
    if d.paginated is not None:
        return d.paginated
    return d.list and d.query is not None and issubclass(d.query, PageQuery)


def _success(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    d = op.description
    data = refs[(d.response, "serialization")] if d.response is not None else None
    if data is not None and d.list:
        data = {"type": "array", "items": data}
    if not d.envelope:
        schema = data or {}
    else:
        properties: dict[str, Any] = {
            "success": {"const": True},
            "message": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time", "pattern": ISO_Z},
        }
        required = ["success", "timestamp"]
        if data is not None:
            properties["data"], required = data, [*required, "data"]
        if _paginated(d):
            properties["pagination"] = {"$ref": REF.format(model="Pagination")}
            required.append("pagination")
        schema = {"type": "object", "required": required, "properties": properties,
                  "additionalProperties": False}
    text = "Switching Protocols" if d.status == 101 else "Success"
    if d.status in (101, 204) or (not d.envelope and not schema):
        return {"description": text}
    return {"description": text, "content": {d.media: {"schema": schema}}}


def _error_statuses(op: Operation) -> dict[int, str]:
    d = op.description
    statuses: dict[int, str] = {}
    if d.body is not None:
        statuses.update({s: _ERROR_TEXT[s] for s in (400, 413, 415, 422)})
    if d.query is not None:
        statuses[400] = _ERROR_TEXT[400]
    if op.auth is not None:
        statuses[401] = _ERROR_TEXT[401]
        statuses[403] = "Admin role required, or the account is not active" if op.auth == "admin" \
            else "The account is not active"
    if d.headers:
        statuses[400] = _ERROR_TEXT[400]
    if _PATH_PARAM.search(op.path):  # also what a path that matches no route pattern gets
        statuses[404] = _ERROR_TEXT[404]
    statuses.update(d.statuses)
    return dict(sorted(statuses.items()))


def _operation(op: Operation, defs: dict[str, Any], refs: dict[Any, Any]) -> dict[str, Any]:
    d = op.description
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": d.summary}
    if d.description:
        out["description"] = d.description
    if d.tags:
        out["tags"] = list(d.tags)
    params = [*_path_parameters(op, defs, refs), *_query_parameters(op, defs, refs),
              *_header_parameters(op)]
    if params:
        out["parameters"] = params
    if d.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {d.body_media: {"schema": refs[(d.body, "validation")]}},
        }
    responses: dict[str, Any] = {str(d.status): _success(op, refs)}
    for status, text in _error_statuses(op).items():
        if d.envelope:
            schema = {"$ref": REF.format(model="ErrorEnvelope")}
            responses[str(status)] = {"description": text, "content": {JSON: {"schema": schema}}}
        else:
            responses[str(status)] = {**_success(op, refs), "description": text}
    if op.retired is not None:
        out["deprecated"] = True
        out["description"] = (f"{out.get('description', '')}\n\nDeprecated; answers until "
                              f"{op.retired.sunset.date().isoformat()}.").strip()
        for response in responses.values():
            response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                   for name, text in RETIREMENT_HEADERS.items()}
    out["responses"] = responses
    out["security"] = [{"bearerAuth": []}] if op.auth else []
    return out


def _models(ops: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for op in ops:
        d = op.description
        uses: tuple[tuple[type[BaseModel] | None, JsonSchemaMode], ...] = (
            (d.body, "validation"), (d.query, "validation"), (d.path, "validation"),
            (d.response, "serialization"))
        for model, mode in uses:
            if model is not None:
                wanted[(model, mode)] = None
    return list(wanted)


def _envelope_components() -> dict[str, Any]:
    integer = {"type": "integer", "minimum": 0}
    return {
        "Pagination": {
            "type": "object",
            "required": ["page", "limit", "total", "totalPages"],
            "properties": {"page": integer, "limit": integer, "total": integer,
                           "totalPages": integer},
        },
        "ErrorEnvelope": {
            "type": "object",
            "required": ["success", "message", "timestamp"],
            "properties": {
                "success": {"const": False},
                "message": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "string"}},
                "code": {"type": "string", "enum": sorted(CODES),
                         "description": "what went wrong, for a program (docs/api.md lists them)"},
                "traceId": {"type": "string"},
                "timestamp": {"type": "string", "format": "date-time", "pattern": ISO_Z},
            },
            "additionalProperties": False,
        },
    }


UNDESCRIBED = Description(summary="(not described yet)", tags=("undescribed",))


def undescribed(routes: Iterable[tuple[str, str, Callable[..., Any]]]) -> list[str]:
    """``METHOD path`` of each route whose handler has no ``@describe`` (a test keeps it empty)."""
    return [f"{m} {p}" for m, p, handler in routes if description_of(handler) is None]


_VERBS = {"GET": "get", "PUT": "update", "PATCH": "update", "DELETE": "delete", "POST": "post"}


def _words(segment: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", segment) if w]


def _pascal(segments: Iterable[str]) -> str:
    return "".join(w[:1].upper() + w[1:] for seg in segments for w in _words(seg))


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def operation_id(method: str, path: str, d: Description) -> str:
    """The operation's id, from its method and path by one rule, so that it reads well in a
    generated client and changes only when the route does (tests/system pins every id):

    * ``/api`` is dropped, and a leading ``admin`` becomes the word after the verb;
    * a path ending in a parameter is an item: ``get``/``update``/``delete``/``post`` and the
      collection in the singular (``getPayment``, ``updateAdminOffer``);
    * a word after a parameter is an action on the item: a POST's verb is that word
      (``rejectAdminPayment``, ``clickOffer``; after two words, the last is the verb:
      ``clearAdminUserRisk``), another method's verb comes first and the word
      after the item (``updateAdminUserStatus``, ``listChatRoomMessages`` for a list);
    * a path without parameters is a collection: a POST answering 201/202 creates one of it
      (``createPayment``) when its last word is a plural, any other POST is named by its words (``authLogin``), a GET is
      ``list`` for a list and ``get`` otherwise (``listPayments``, ``getAuthMe``);
    * the root path ``/`` is ``Home`` (``getHome``).
    """
    segments = [s for s in openapi_path(path).split("/") if s]
    if segments[:1] == ["api"]:
        segments = segments[1:]
    admin = ["Admin"] if segments[:1] == ["admin"] else []
    segments = segments[len(admin):]
    params = [i for i, s in enumerate(segments) if s.startswith("{")]
    words = [s for s in segments if not s.startswith("{")]
    read = "list" if d.list else "get"
    verb = read if method == "GET" else _VERBS.get(method, method.lower())
    if not segments:  # the site's root page
        return verb + "Home"
    if params and params[-1] == len(segments) - 1:  # an item
        return verb + _pascal([*admin, *words[:-1], _singular(words[-1])])
    if params:  # an action on an item
        owners = [w for w in segments[: params[-1]] if not w.startswith("{")]
        item = [*owners[:-1], _singular(owners[-1])]
        action = segments[params[-1] + 1:]
        if method == "POST" and len(action) > 1:  # a verb on a part of the item (risk/clear)
            return _camel(action[-1:]) + _pascal([*admin, *item, *action[:-1]])
        if method == "POST":
            return _camel(action) + _pascal([*admin, *item])
        return verb + _pascal([*admin, *item, *action])
    if method == "POST":
        if d.status in (201, 202) and words[-1].endswith("s"):
            return "create" + _pascal([*admin, *words[:-1], _singular(words[-1])])
        return _camel([*(["admin"] if admin else []), *words])
    return verb + _pascal([*admin, *words])


def _camel(segments: list[str]) -> str:
    name = _pascal(segments)
    return name[:1].lower() + name[1:]


def operations(routes: Iterable[tuple[str, str, Callable[..., Any]]]) -> list[Operation]:
    """Pair each (method, full path, handler) with its description and ``operation_id``.

    A route without one still appears (as ``UNDESCRIBED``), so the document never hides a route;
    ``undescribed`` is what the test suite fails on. Two routes given one id is a bug in the rule
    or the routes: it raises.
    """
    ops, seen = [], set()
    for method, path, handler in routes:
        description = description_of(handler) or UNDESCRIBED
        oid = operation_id(method.upper(), path, description)
        if oid in seen:
            raise ValueError(f"two operations would be named {oid}: {method} {path}")
        seen.add(oid)
        ops.append(Operation(method.upper(), path, description, auth_of(handler), oid,
                             along_wrappers(handler, "retirement")))
    return ops


def _rename_refs(value: Any, names: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rename_refs(v, names) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF.format(model="")):
            out["$ref"] = REF.format(model=names[ref.rsplit("/", 1)[-1]])
        return out
    if isinstance(value, list):
        return [_rename_refs(v, names) for v in value]
    return value


def component_names(defs: Mapping[str, Any]) -> dict[str, str]:
    """pydantic's key of each schema -> its component name: the model's class name (``-Input``
    and ``-Output``, when one model reads and writes differently, become ``Input``/``Output``).

    A generated client names a class after a component's title, so two models sharing a class
    name would collide there (one of them dropped with its operations): pydantic then qualifies
    the key with the module path, and this refuses it.
    """
    names = {}
    for key, schema in defs.items():
        if "__" in key:
            raise ValueError(f"two models are named {schema.get('title', key)}: "
                             "give each its own class name")
        names[key] = re.sub(r"-(Input|Output)$", r"\1", key)
    if len(set(names.values())) != len(names):
        raise ValueError(f"component names collide: {sorted(names.values())}")
    return names


def _referenced(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for v in value.values():
            _referenced(v, found)
    elif isinstance(value, list):
        for v in value:
            _referenced(v, found)


def _used(paths: Mapping[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    """The components that the paths reach (query and path models are inlined as parameters)."""
    found: set[str] = set()
    _referenced(paths, found)
    seen: set[str] = set()
    while found - seen:
        name = (found - seen).pop()
        seen.add(name)
        _referenced(components[name], found)
    return {name: {**components[name], "title": name} for name in sorted(seen)}


def build_document(ops: list[Operation], *, title: str, version: str, info: str) -> dict[str, Any]:
    refs, top = models_json_schema(_models(ops), ref_template=REF, schema_generator=_Schemas)
    defs = top.get("$defs", {})
    names = component_names(defs)
    defs = {names[k]: _rename_refs(v, names) for k, v in defs.items()}
    refs = {k: _rename_refs(v, names) for k, v in refs.items()}
    components = {**defs, **_envelope_components()}
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(openapi_path(op.path), {})[op.method.lower()] = _operation(
            op, components, refs
        )
    add_links(ops, paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": info},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": _used(paths, components),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
