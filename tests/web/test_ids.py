"""The one parser of ids in paths (web/ids.py)."""

from __future__ import annotations

import pytest

from common.errors import NotFound
from web.ids import MAX_ID, parse_id


def test_parse_id_accepts_ascii_digits_within_bigint() -> None:
    assert parse_id("42", "Thing") == 42
    assert parse_id(str(MAX_ID), "Thing") == MAX_ID


@pytest.mark.parametrize("raw", [
    "9" * 5000, str(MAX_ID + 1), "0", "-1", "abc", "²", "١٢", " 1", "+1", "1_000", "", "1e3",
])
def test_parse_id_refuses_anything_else_as_not_found(raw: str) -> None:
    with pytest.raises(NotFound, match="Thing not found"):
        parse_id(raw, "Thing")
