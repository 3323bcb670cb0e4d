"""Parsing a request's body and query into pydantic models, with the envelope's 4xx on failure.

Bodies are parsed with the standard library so that numbers arrive as exact ``Decimal``s (money
never passes through a binary float) and ``NaN``/``Infinity`` are refused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import types
from decimal import Decimal
from typing import Any, TypeVar, Union, get_args, get_origin

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


def _has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys included) holds U+0000."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


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
    # PostgreSQL text cannot hold U+0000, and the document's strings exclude it: no field of any
    # model may carry one (refused here once rather than per field). Unknown fields are ignored,
    # whatever they hold.
    if _has_nul([v for k, v in data.items() if k in model.model_fields]):
        raise InvalidInput(f"Invalid {what}", errors=[f"{what}: strings must not contain NUL"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid {what}", errors=field_errors(exc)) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json(request))


# A query's timestamp, as the document states it (web.openapi, ``format``): an RFC 3339
# ``date-time`` (a date, a time and an offset) or a ``date`` (its midnight). pydantic alone would
# also take a number of seconds (``until=0.5``) or a time without an offset.
_DATE_TIME = re.compile(
    r"\d{4}-\d\d-\d\d([Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d))?", re.ASCII)
_FLAGS = ("true", "false")


def _scalar(annotation: Any) -> Any:
    """``X`` of ``X``, ``X | None`` and ``Optional[X]``."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def query_errors(model: type[BaseModel], query: dict[str, str]) -> list[str]:
    """What the document says of a query's booleans and timestamps and pydantic's lax mode would
    let through: a boolean is ``true`` or ``false``, a timestamp ``_DATE_TIME``."""
    errors = []
    for name, info in model.model_fields.items():
        value = query.get(info.alias or name)
        if value is None:
            continue
        kind = _scalar(info.annotation)
        if kind is bool and value not in _FLAGS:
            errors.append(f"{name}: must be true or false")
        elif kind is dt.datetime and not _DATE_TIME.fullmatch(value):
            errors.append(f"{name}: must be an RFC 3339 date-time with an offset, or a date")
    return errors


def parse_query(request: web.Request, model: type[M]) -> M:
    if "%00" in request.query_string or "\x00" in request.query_string:
        raise BadRequest("Invalid query parameters", errors=["query: must not contain NUL"])
    query = dict(request.query)
    errors = query_errors(model, query)
    if errors:
        raise BadRequest("Invalid query parameters", errors=errors)
    try:
        return model.model_validate(query)
    except ValidationError as exc:
        raise BadRequest("Invalid query parameters", errors=field_errors(exc)) from None
