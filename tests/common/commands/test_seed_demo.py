"""``savebucks seed-demo`` loads demo data through the services, and a second run adds nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.fixtures.money import live_client  # noqa: F401


@pytest.mark.committed
def test_seed_demo_is_idempotent(committed: Engine) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "savebucks"), "seed-demo"],
                              capture_output=True, text=True, timeout=120, check=False)

    def counts() -> tuple[int, ...]:
        with committed.connect() as conn:
            return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                         for t in ("users", "offers", "sales", "ledger_entries"))

    first = run()
    assert first.returncode == 0, first.stderr
    assert "admin: admin@savebucks.local / " in first.stdout
    before = counts()
    assert before[0] == 3 and before[1] == 10 and before[2] == 10 and before[3] == 5
    assert run().returncode == 0
    assert counts() == before
    with committed.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM sales GROUP BY 1")).all())
        categories = conn.execute(text("SELECT count(DISTINCT category) FROM offers")).scalar_one()
    assert statuses == {"approved": 5, "pending": 5} and categories >= 5


@pytest.mark.committed
async def test_printed_demo_credentials_sign_in(committed: Engine, live_client) -> None:  # type: ignore[no-untyped-def]
    seeded = await asyncio.to_thread(
        subprocess.run, [str(Path(sys.executable).parent / "savebucks"), "seed-demo"],
        capture_output=True, text=True, timeout=120, check=False)
    assert seeded.returncode == 0, seeded.stderr
    admin_line = next(line for line in seeded.stdout.splitlines() if line.startswith("admin: "))
    email, password = admin_line.removeprefix("admin: ").split(" / ")
    users_line = next(line for line in seeded.stdout.splitlines() if line.startswith("users: "))
    user_password = users_line.rsplit(" / ", 1)[1]
    user_email = users_line.removeprefix("users: ").split(",")[0].strip()
    for login, secret, role in [(email, password, "admin"), (user_email, user_password, "user")]:
        resp = await live_client.post("/api/auth/login", json={"email": login, "password": secret})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["data"]["user"]["role"] == role
