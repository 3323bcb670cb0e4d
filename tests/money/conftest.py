"""The money checker: after every test here, every user's money must add up (docs/money.md)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from common.config import NetworkConfig, Settings
from common.services.ledger import check_ledger


def _problems(bind: Connection | Engine) -> list[str]:
    with Session(bind=bind) as session:
        return check_ledger(session)


@pytest.fixture(autouse=True)
def ledger_checker(request: pytest.FixtureRequest, connection: Connection) -> Iterator[None]:
    """Inside a test's transaction: checked on its connection before the rollback."""
    yield
    if "committed" not in request.fixturenames:
        assert _problems(connection) == []


@pytest.fixture
def committed(committed: Engine) -> Iterator[Engine]:
    """The shared ``committed``, checked before its truncation wipes the evidence."""
    yield committed
    with committed.connect() as conn:
        assert _problems(conn) == []


def _network(name: str, secret: str, scheme: str = "generic", ips: tuple[str, ...] = ()) -> NetworkConfig:
    return NetworkConfig(
        name=name, secret=secret, scheme=scheme,
        allowed_ips=tuple(ipaddress.ip_network(i) for i in ips),
    )


NETWORKS = {
    "testnet": _network("testnet", "test-secret"),
    "cpx": _network("cpx", "cpx-secret", "cpx", ("127.0.0.0/8",)),
    "sr": _network("sr", "sr-secret", "superrewards"),
    "tapjoy": _network("tapjoy", "tj-secret", "tapjoy"),
    "locked": _network("locked", "locked-secret", ips=("192.0.2.1/32",)),
}


@pytest.fixture(scope="session")
def money_settings(settings: Settings) -> Settings:
    """The test settings with offer networks configured (and no sale hold unless changed)."""
    return settings.model_copy(update={"networks": NETWORKS})


@pytest.fixture
async def money_client(aiohttp_client, money_settings: Settings, bound_db):  # type: ignore[no-untyped-def]
    from web.app import create_app

    return await aiohttp_client(create_app(money_settings, db=bound_db))


@pytest.fixture
async def live_client(aiohttp_client, settings: Settings, committed: Engine):  # type: ignore[no-untyped-def]
    """The shared ``live_client`` with a roomy withdrawal limit: the concurrency tests send 50
    requests for one user at once; only tests/money/test_ratelimit.py meets the limit."""
    from web.app import create_app

    return await aiohttp_client(create_app(settings.model_copy(
        update={"rate_limit_withdrawal": "1000/minute"})))


@pytest.fixture
async def live_money_client(aiohttp_client, money_settings: Settings, committed: Engine):  # type: ignore[no-untyped-def]
    from web.app import create_app

    return await aiohttp_client(create_app(money_settings))
