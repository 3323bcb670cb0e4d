"""A shape's JSON written by PostgreSQL (``common.wire_sql``) is byte for byte what the envelope
writes of ``Shape.of(row)``: the profile of ``GET /auth/me`` over varied rows (text needing every
escape, money at the column's edges, instants at the milliseconds' edges, NULLs)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    MetaData,
    Numeric,
    Table,
    insert,
    select,
)

from common.models import User
from common.wire import Shape
from common.wire_sql import shape_json
from web.envelope import dumps
from web.handlers import me
from web.handlers.auth import UserProfile

_u = User.__table__
_COLUMNS = select(*(_u.c[column] for _, column in UserProfile.columns()))
_TEXT = "".join(chr(c) for c in range(1, 0x80)) + "é ß \u2028\u2029\ufeff \U0001f600 日本"
_MONEY = ["0", "0.01", "0.07", "0.10", "1", "10.00", "10.50", "100", "1234.56", "-0.01", "-10",
          "-123.40", "999999999999.99", "-999999999999.99", "100000000000", "0.99"]
_INSTANTS = [
    "2026-12-03 09:00:00+00", "2026-12-03 09:00:00.000999+00", "2026-12-03 09:00:00.001+00",
    "1999-12-31 23:59:59.999999+00", "2000-02-29 12:00:00.5+05:30", "2026-06-01 00:00:00-11",
    "0999-01-01 00:00:00.123456+00", "9999-12-31 23:59:59.999+00",
]
_serial = itertools.count(1)


@pytest.fixture
def rolled_back(engine: Engine) -> Iterator[Connection]:
    # Rows with balances no ledger explains: never committed, and not the ledger-checked fixture.
    with engine.connect() as conn:
        conn.begin()
        yield conn


def _both(conn: Connection, **values: Any) -> tuple[bytes, bytes]:
    """The profile of a new row with ``values``, as the envelope writes it and as the handler's
    statement does."""
    n = next(_serial)
    row = {"email": f"wire{n}@example.com", "name": f"Wire {n}", "password_hash": "x", **values}
    user_id = conn.execute(insert(_u).values(row).returning(_u.c.id)).scalar_one()
    shaped = conn.execute(_COLUMNS.where(_u.c.id == user_id)).mappings().one()
    written = conn.exec_driver_sql(me._PROFILE.sql, me._PROFILE.params({"id": user_id})).scalar_one()
    return dumps(UserProfile.of(shaped)), written.encode()


def test_the_profile_is_the_envelopes_json_over_varied_rows(rolled_back: Connection) -> None:
    rows: list[dict[str, Any]] = [
        {"name": _TEXT[:100], "email": _TEXT[100:] + "@x", "avatar": _TEXT},
        {"avatar": None, "role": "admin", "status": "banned", "payouts_frozen": True},
        {"status": "suspended", "name": 'quote " backslash \\ slash / tab \t'},
    ]
    rows += [{"balance": Decimal(m), "pending_balance": abs(Decimal(m))} for m in _MONEY]
    rows += [{"created_at": instant} for instant in _INSTANTS]
    for values in rows:
        expected, written = _both(rolled_back, **values)
        assert written == expected, values


_texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                 max_size=40)
_money = st.decimals(min_value=Decimal("-999999999999.99"), max_value=Decimal("999999999999.99"),
                     places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_texts, avatar=st.none() | _texts, balance=_money, pending=_money,
       created=st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9998, 12, 31),
                            timezones=st.just(dt.UTC)),
       frozen=st.booleans())
def test_the_profile_is_the_envelopes_json_for_any_row(
    rolled_back: Connection, name: str, avatar: str | None, balance: Decimal, pending: Decimal,
    created: dt.datetime, frozen: bool,
) -> None:
    expected, written = _both(rolled_back, name=name, avatar=avatar, balance=balance,
                              pending_balance=abs(pending), created_at=created,
                              payouts_frozen=frozen)
    assert written == expected


class _Odd(Shape):
    value: float


@pytest.mark.parametrize("kind", [Float(), Numeric(20, 2), Numeric(10, 6), DateTime()])
def test_a_column_with_no_exact_rendering_is_refused(kind: Any) -> None:
    table = Table("odd", MetaData(), Column("id", BigInteger, primary_key=True),
                  Column("value", kind))
    with pytest.raises(TypeError):
        shape_json(_Odd, table.c)
