"""The console's first load (HTML shell, script, stylesheet) stays at most 300 KB gzipped; the
figure is printed (pytest -s, or the build's own output in .dev/logs/console.log)."""

from __future__ import annotations

import gzip
import re

import pytest

from web.console import DIST

BUDGET = 300 * 1024


@pytest.mark.skipif(not (DIST / "console.html").exists(), reason="console/dist not built")
def test_first_load_within_budget() -> None:
    shell = (DIST / "console.html").read_text()
    files = [DIST / "console.html"] + [
        DIST / "assets" / name for name in re.findall(r'/console/assets/([\w.-]+)', shell)]
    sizes = {f.name: len(gzip.compress(f.read_bytes(), 9)) for f in files}
    total = sum(sizes.values())
    print(f"console first load: {total / 1024:.1f} KB gzipped {sizes}")
    assert len(files) == 3 and total <= BUDGET
