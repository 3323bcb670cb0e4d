"""Core statements compiled once, for the paths where SQLAlchemy's own execution costs too much.

The schema and the queries are still described once, with the models and Core ``select()``; a
``Query`` holds the SQL text the psycopg dialect renders for a statement, so that a hot read is one
round trip on a raw psycopg connection (prepared by psycopg after a few runs) with no per-request
compilation. See ``docs/database.md`` for the measurements behind this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CompoundSelect, CursorResult, Result, Select
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.sql import ClauseElement

_DIALECT = psycopg_dialect.dialect()
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Query:
    """A statement rendered to SQL with ``%(name)s`` placeholders, and its default parameters."""

    sql: str
    defaults: dict[str, Any]
    # A plain SELECT: running it twice changes nothing, so it may be retried on a fresh
    # connection when its pooled one turns out dead (web/db.py).
    read_only: bool = False

    def params(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**self.defaults, **values} if values else dict(self.defaults)


def compile_query(statement: ClauseElement) -> Query:
    """Render a Core statement once. Use ``bindparam("name")`` for per-call values."""
    compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    sql = str(compiled)
    # A SELECT may still write (a data-modifying CTE) or lock (FOR UPDATE): not read-only then.
    read_only = isinstance(statement, Select | CompoundSelect) and not _WRITES.search(sql)
    return Query(sql=sql, defaults=dict(compiled.params), read_only=read_only)


def affected(result: Result[Any]) -> int:
    """Rows an INSERT/UPDATE/DELETE touched. ``Session.execute`` is typed as returning a plain
    ``Result``; for a DML statement it is a ``CursorResult``, which carries the count."""
    return cast("CursorResult[Any]", result).rowcount
