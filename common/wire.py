"""The API's wire forms (docs/api.md "Envelope"), shared by the web's answers and the events.

A ``Shape`` is a pydantic model that names a resource's fields once: the OpenAPI document reads its
schema, and ``Shape.of`` builds the resource's dict from a row whose columns are the fields' names
in snake_case (``createdAt`` is read from ``created_at``). Values pass through as they are (no
validation: a hot read pays one dict comprehension per row); whoever writes the JSON turns money
and timestamps into their wire form: ``web.envelope`` for answers, ``jsonable`` for event data.

A shape that an event carries lives beside the service that emits it (the web imports it from
there); a shape only the web answers with lives in ``web/``.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel

_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def iso(value: dt.datetime) -> str:
    """ISO 8601 UTC with a ``Z`` and milliseconds (truncated), as every timestamp of the API.

    Written field by field: every answer carries one or more, and ``isoformat`` with its
    conversions cost several times as much."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(dt.UTC)
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z")


def wire_value(value: Any) -> Any:
    """A value as the API writes it: money as a JSON number (two-decimal amounts print exactly as
    the shortest float repr; no arithmetic happens here), a timestamp as ``iso``, a date as
    ``YYYY-MM-DD``; anything else is returned as it is."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def jsonable(shaped: dict[str, Any]) -> dict[str, Any]:
    """A shape's dict ready for an event (``emit`` wants JSON); nested values are left as they
    are."""
    return {name: wire_value(value) for name, value in shaped.items()}


def column_of(field: str) -> str:
    return _HUMP.sub("_", field).lower()


def _absent(column: str) -> Any:
    raise KeyError(column)


def _picker(columns: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A mapping's values of ``columns`` as a tuple, in one C call (``itemgetter``)."""
    if len(columns) == 1:
        only = columns[0]
        return lambda row: (row[only],)
    if not columns:
        return lambda row: ()
    return operator.itemgetter(*columns)


class Shape(BaseModel):
    _columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    _names: ClassVar[tuple[str, ...]] = ()
    _pick: ClassVar[Callable[[Mapping[str, Any]], tuple[Any, ...]]] = staticmethod(_picker(()))

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._columns = tuple((name, column_of(name)) for name in cls.model_fields)
        cls._names = tuple(name for name, _ in cls._columns)
        cls._pick = staticmethod(_picker(tuple(column for _, column in cls._columns)))

    @classmethod
    def columns(cls) -> tuple[tuple[str, str], ...]:
        """``(field, column)`` pairs in field order."""
        return cls._columns

    @classmethod
    def of(cls, row: Mapping[str, Any] | object | None = None, /, **values: Any) -> dict[str, Any]:
        """The shape's dict in field order: a field named in ``values`` takes that value, any
        other the row's column (a mapping's key, or an object's attribute)."""
        if not values and isinstance(row, Mapping):
            # The hot reads' case (a whole row, nothing overridden): half the cost of the loop.
            return dict(zip(cls._names, cls._pick(row), strict=True))
        if values:
            unknown = values.keys() - cls.model_fields.keys()
            if unknown:
                raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
        get = (_absent if row is None else row.__getitem__ if isinstance(row, Mapping)
               else row.__getattribute__)
        return {name: values[name] if name in values else get(column)
                for name, column in cls._columns}
