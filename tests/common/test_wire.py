"""The API's wire forms: timestamps in UTC with a Z and milliseconds, whatever the zone given."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from common.wire import iso

_ZONES = st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                          dt.timezone(dt.timedelta(hours=-11))])


@given(st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31)), _ZONES)
def test_iso_is_isoformat_in_utc_to_the_millisecond(value: dt.datetime, zone: dt.tzinfo | None) -> None:
    value = value.replace(tzinfo=zone)
    utc = value.replace(tzinfo=dt.UTC) if zone is None else value.astimezone(dt.UTC)
    assert iso(value) == utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
