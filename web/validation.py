"""Parsing a request's body and query into pydantic models, with the envelope's 4xx on failure.

Bodies are parsed with the standard library so that numbers arrive as exact ``Decimal``s (money
never passes through a binary float) and ``NaN``/``Infinity`` are refused.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from common.errors import BadRequest, InvalidInput, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def loads(raw: bytes | str) -> Any:
    """JSON with exact decimals; raises ``BadRequest`` for anything that is not plain JSON."""
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise BadRequest("Malformed JSON body") from None
    if _depth(value) > MAX_DEPTH:
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        raise BadRequest("Request body is empty")
    return loads(raw)


def field_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        out.append(f"{where}: {err['msg']}")
    return out


def validate(model: type[M], data: Any, *, what: str = "body") -> M:
    if not isinstance(data, dict):
        raise BadRequest(f"The {what} must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid {what}", errors=field_errors(exc)) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json(request))


def parse_query(request: web.Request, model: type[M]) -> M:
    if "%00" in request.query_string or "\x00" in request.query_string:
        raise BadRequest("Invalid query parameters", errors=["query: must not contain NUL"])
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise BadRequest("Invalid query parameters", errors=field_errors(exc)) from None
