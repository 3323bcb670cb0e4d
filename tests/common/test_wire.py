"""The API's wire forms: timestamps in UTC with a Z and milliseconds, whatever the zone given."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.wire import Shape, iso

_ZONES = st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                          dt.timezone(dt.timedelta(hours=-11))])


@given(st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31)), _ZONES)
def test_iso_is_isoformat_in_utc_to_the_millisecond(value: dt.datetime, zone: dt.tzinfo | None) -> None:
    value = value.replace(tzinfo=zone)
    utc = value.replace(tzinfo=dt.UTC) if zone is None else value.astimezone(dt.UTC)
    assert iso(value) == utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Pair(Shape):
    userId: int
    createdAt: str


class _One(Shape):
    code: str


def test_a_whole_row_is_shaped_as_field_by_field() -> None:
    row = {"user_id": 7, "created_at": "then", "unused": 1}
    assert _Pair.of(row) == {"userId": 7, "createdAt": "then"}
    assert list(_Pair.of(row)) == ["userId", "createdAt"]  # field order
    assert _Pair.of(row, createdAt="now") == {"userId": 7, "createdAt": "now"}
    assert _One.of({"code": "x"}) == {"code": "x"}


def test_a_row_missing_a_column_is_refused_as_before() -> None:
    with pytest.raises(KeyError):
        _Pair.of({"user_id": 7})
    with pytest.raises(KeyError):
        _One.of({})
