"""Fixtures of the auth tests: an app client whose settings a test can adjust, and sign-up helpers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from common.config import Settings

PASSWORD = "correct horse battery"
_emails = itertools.count(1)
# Generous limits by default: only the rate-limit tests meet them.
_ROOMY = {
    "rate_limit_login": "1000/minute",
    "rate_limit_login_email": "1000/minute",
    "rate_limit_register": "1000/minute",
    "rate_limit_refresh": "1000/minute",
    "rate_limit_refresh_token": "1000/minute",
}

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(bound_db, aiohttp_client, settings: Settings) -> MakeClient:  # type: ignore[no-untyped-def]
    """``await make_client(refresh_rotation=True, ...)``: the app bound to the test transaction."""
    from web.app import create_app

    async def make(**overrides: Any) -> TestClient:
        adjusted = settings.model_copy(update={**_ROOMY, **overrides})
        client = await aiohttp_client(create_app(adjusted, db=bound_db))
        await gate_ready(client)
        return client

    return make


@pytest.fixture
async def api(make_client: MakeClient) -> TestClient:
    return await make_client()


async def gate_ready(client: TestClient, deadline: float = 5.0) -> None:
    """Wait until the account gate follows the events channel (tests start from a steady app)."""
    from web.auth import ACCOUNT_GATE

    end = time.monotonic() + deadline
    while not client.app[ACCOUNT_GATE].ready and time.monotonic() < end:
        await asyncio.sleep(0.01)
    assert client.app[ACCOUNT_GATE].ready


def new_email() -> str:
    return f"person{next(_emails)}@example.com"


async def register(
    client: TestClient, *, email: str | None = None, password: str = PASSWORD, name: str = "Pat"
) -> dict[str, Any]:
    """Register and return the response's ``data`` (user, tokens)."""
    resp = await client.post(
        "/api/auth/register", json={"email": email or new_email(), "password": password, "name": name}
    )
    body = await resp.json()
    assert resp.status == 201, body
    return body["data"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

