"""A shape's JSON written by PostgreSQL, byte for byte what ``web.envelope.dumps`` writes of
``Shape.of(row)`` (``common.wire``): a hot read can then splice the row's one text value into the
envelope, with no per-field work in Python (no ``Shape.of``, ``iso``, money through orjson's hook).

Each column type has the one rendering that matches the API's wire form (docs/api.md "Envelope"):

- integers: their decimal digits (``bigint::text``, as orjson writes an int);
- text: ``to_json(text)``: PostgreSQL escapes exactly what orjson escapes (``"``, ``\\``, the
  control characters, as ``\\b \\f \\n \\r \\t`` or lowercase ``\\u00XX``) and passes the rest as
  UTF-8;
- booleans: ``true`` / ``false``;
- money (``numeric`` of at most 15 digits and 4 decimals): the shortest form of the float that
  ``wire_value`` makes of it, which for so few digits is the decimal itself without trailing
  zeros, and ``.0`` when whole (``10.0``, ``10.5``, ``0.07``);
- timestamps with a time zone: ``iso`` (UTC, milliseconds truncated, ``Z``), by ``to_char``;
- NULL: ``null``.

Any other column type is refused when the statement is built (at import), never guessed.
``tests/common/test_wire_sql.py`` compares the two writers over varied rows.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Numeric,
    String,
    Text,
    case,
    cast,
    func,
    literal_column,
)
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from common.wire import Shape

# ``iso``: the fraction's ``MS`` is the milliseconds truncated, as ``microsecond // 1000``.
ISO_FORMAT = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""  # for to_char of a UTC timestamp, as SQL text
_ISO: ColumnElement[str] = literal_column(ISO_FORMAT, Text)
_UTC: ColumnElement[str] = literal_column("'UTC'", Text)
_MAX_MONEY_DIGITS = 15  # a double holds any decimal of 15 digits exactly (DBL_DIG)
_MAX_MONEY_SCALE = 4  # orjson writes 0.0001 without an exponent


def _literal(text: str) -> ColumnElement[str]:
    """A constant of the statement itself (no bound parameter to send each time)."""
    return literal_column("'" + text.replace("'", "''") + "'", Text)


def _value(column: Column[Any]) -> ColumnElement[str]:
    """The column's JSON value as text (NULL stays NULL: ``shape_json`` writes ``null``)."""
    kind = column.type
    if isinstance(kind, Boolean):
        return cast(func.to_json(column), Text)
    if isinstance(kind, Integer):
        return cast(column, Text)
    if isinstance(kind, Numeric) and not isinstance(kind, Float):
        if (kind.precision or 1000) > _MAX_MONEY_DIGITS or (kind.scale or 0) > _MAX_MONEY_SCALE:
            raise TypeError(f"{column.name}: numeric({kind.precision}, {kind.scale}) may not "
                            "print as the float the API writes")
        # Whole: its integer and ".0". Otherwise there is a non-zero digit after the point, so
        # removing trailing zeros stops before the point.
        return case(
            (column == func.trunc(column), cast(func.trunc(column), Text) + _literal(".0")),
            else_=func.rtrim(cast(column, Text), _literal("0")),
        )
    if isinstance(kind, DateTime):
        if not kind.timezone:
            raise TypeError(f"{column.name}: a timestamp without a time zone has no UTC instant")
        return _literal('"') + func.to_char(func.timezone(_UTC, column), _ISO) + _literal('"')
    if isinstance(kind, String):  # Text and Enum-like strings too
        return cast(func.to_json(column), Text)
    raise TypeError(f"{column.name}: no JSON rendering for {kind!r}")


def shape_json(shape: type[Shape], columns: ReadOnlyColumnCollection[str, Column[Any]],
               ) -> ColumnElement[str]:
    """The text of ``dumps(shape.of(row))`` for a row of ``columns`` (a table's ``.c``), in the
    shape's field order."""
    parts: list[ColumnElement[str]] = []
    for index, (field, name) in enumerate(shape.columns()):
        column = columns[name]
        value = _value(column)
        if column.nullable:
            value = func.coalesce(value, _literal("null"))
        key = orjson.dumps(field).decode()
        parts.append(_literal(("{" if index == 0 else ",") + key + ":"))
        parts.append(value)
    parts.append(_literal("}"))
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + part
    return joined
