"""docs/api.md is the human reference: it names every operation, every WebSocket frame and every
error code the server has, so one added later fails here until it is written down."""

from __future__ import annotations

import re
from pathlib import Path

from common.errors import CODES
from common.event_catalog import CLIENT, SERVER
from web.docs import all_operations
from web.openapi import openapi_path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "docs" / "api.md").read_text()


def test_every_operation_is_in_the_reference() -> None:
    missing = []
    for op in all_operations():
        path = openapi_path(op.path)
        written = (f"`{path.removeprefix('/api')}`", f"`{op.method} {path}`")
        if not any(w in REFERENCE for w in written):
            missing.append(f"{op.method} {path}")
    assert missing == []


def test_every_frame_and_error_code_is_in_the_reference() -> None:
    frames = {n for n, f in SERVER.items() if f.audience != "internal"} | set(CLIENT)
    assert [n for n in sorted(frames) if f"`{n}`" not in REFERENCE] == []
    assert [c for c in sorted(CODES) if f"`{c}`" not in REFERENCE] == []


def test_the_reference_points_at_nothing_outside_the_repository() -> None:
    for path in (ROOT / "README.md", ROOT / "docs" / "api.md"):
        text = path.read_text()
        assert "/work/" not in text and not re.search(r"(?<![\w/])API\.md", text), path
