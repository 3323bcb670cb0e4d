"""Ids in paths: the one parser every route with a path id uses.

An id is a row's BIGINT primary key written the canonical way: ASCII digits, no sign, no leading
zero, at most ``MAX_ID``. Anything else names no row and is a 404, decided before ``int()`` sees
the text (``int`` refuses strings past 4,300 digits, and ``\\d`` in a route pattern also matches
other scripts' digits, which ``int`` would accept).
"""

from __future__ import annotations

import re

from aiohttp import web
from pydantic import BaseModel, Field

from common.errors import NotFound

MAX_ID = 2**63 - 1  # PostgreSQL BIGINT
_CANONICAL = re.compile(r"[1-9][0-9]{0,18}")  # at most 19 digits, as MAX_ID has


class IdPath(BaseModel):
    """The path of a route ending in ``{id}`` (for the OpenAPI document)."""

    id: int = Field(ge=1, le=MAX_ID)


def parse_id(raw: str, what: str) -> int:
    """``raw`` as an id, or ``NotFound("<what> not found")``."""
    if _CANONICAL.fullmatch(raw):
        value = int(raw)
        if value <= MAX_ID:
            return value
    raise NotFound(f"{what} not found")


def path_id(request: web.Request, what: str, name: str = "id") -> int:
    """The id in the path parameter ``name``; a 404 for ``what`` when it names no row."""
    return parse_id(request.match_info[name], what)
