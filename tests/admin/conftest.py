"""Fixtures of the admin tests: an admin, a plain user, their headers, an app client."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import User
from tests.factories import auth_headers, make_user


@pytest.fixture
async def api(client: TestClient) -> TestClient:
    """The app client, once its account gate follows the events channel."""
    from web.auth import ACCOUNT_GATE

    end = time.monotonic() + 5.0
    gate = client.app.get(ACCOUNT_GATE)
    while gate is not None and not gate.ready and time.monotonic() < end:
        await asyncio.sleep(0.01)
    return client


@pytest.fixture
def admin(session: Session) -> User:
    return make_user(session, role="admin", name="Ada Admin")


@pytest.fixture
def member(session: Session) -> User:
    return make_user(session, name="Uma User")


@pytest.fixture
def admin_headers(settings: Settings, admin: User) -> dict[str, str]:
    return {**auth_headers(settings, admin), "X-Trace-ID": "trace-admin-0001"}


@pytest.fixture
def member_headers(settings: Settings, member: User) -> dict[str, str]:
    return auth_headers(settings, member)
