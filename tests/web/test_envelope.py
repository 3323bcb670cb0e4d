"""The envelope's timestamp: ``now_iso`` writes what ``iso`` of the clock would, whatever the
instant, across second, day and year boundaries, and when the clock moves back."""

from __future__ import annotations

import datetime as dt

from freezegun import freeze_time

from common.wire import iso
from web.envelope import now_iso

# freezegun derives its nanoseconds from a float: the fractions stay clear of a millisecond's edge
# by more than that float's error (the real clock has no such error).
_INSTANTS = [
    "2026-12-03 08:59:59.999999",
    "2026-12-03 09:00:00.000000",
    "2026-12-03 09:00:00.000999",
    "2026-12-03 09:00:00.001500",
    "2026-12-31 23:59:59.998500",
    "2027-01-01 00:00:00.500500",
    "2026-12-03 09:00:00.250500",  # back in time: the second written earlier is not reused
    "2001-02-03 04:05:06.789012",
]


def test_now_iso_is_iso_of_the_clock() -> None:
    for instant in _INSTANTS:
        with freeze_time(instant):
            assert now_iso() == iso(dt.datetime.now(dt.UTC)), instant
