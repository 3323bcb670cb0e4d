"""Clients generated from the document the app serves, on a real port: a Python client
(openapi-python-client) builds without a single warning and drives sign-in, a withdrawal and its
payout by a real worker; TypeScript types (openapi-typescript) compile with a typed sign-in call
(clients/typescript). Nothing generated is committed: each run builds it from the served
document, into a temporary folder (the TypeScript types into the git-ignored
clients/typescript/generated)."""

from __future__ import annotations

import importlib
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from common.security.passwords import hash_password
from tests.fixtures.factories import make_user
from tests.fixtures.live import ThreadedServer, live_server  # noqa: F401
from tests.fixtures.npm import npm_tools, run  # noqa: F401

pytestmark = [pytest.mark.contract, pytest.mark.committed]
PACKAGE = "savebucks_client"
# No post hooks: the generator would otherwise look for ruff on PATH and warn when it is not.
CONFIG = f"post_hooks: []\nproject_name_override: savebucks-client\npackage_name_override: {PACKAGE}\n"
PASSWORD = "correct horse battery"


@pytest.fixture
def served(live_server: ThreadedServer, tmp_path: Path) -> Path:
    path = tmp_path / "openapi.json"
    path.write_bytes(requests.get(f"{live_server.url}/api/openapi.json", timeout=10).content)
    return path


@pytest.fixture
def client_package(served: Path, tmp_path: Path) -> Iterator[ModuleType]:
    (tmp_path / "config.yaml").write_text(CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    out = run(generator, "generate", "--path", served, "--output-path", tmp_path / PACKAGE,
               "--meta", "none", "--config", tmp_path / "config.yaml")
    assert "warning" not in out.lower(), out  # a warning is an operation or a model dropped
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_python_client_signs_in_withdraws_and_sees_the_payment_paid(  # type: ignore[no-untyped-def]
    client_package: ModuleType, live_server: ThreadedServer, committed: Engine,
    celery_worker,
) -> None:
    with Session(committed, expire_on_commit=False) as session, session.begin():
        make_user(session, email="payee@example.com", balance="40",
                  password_hash=hash_password(PASSWORD, rounds=4))
    models = _module("models")
    with client_package.Client(base_url=live_server.url) as anonymous:
        signed = _module("api.auth.auth_login").sync_detailed(
            client=anonymous, body=models.LoginBody(email="payee@example.com", password=PASSWORD))
    assert signed.status_code == 200, signed.content
    with client_package.AuthenticatedClient(
        base_url=live_server.url, token=signed.parsed.data.access_token,
        raise_on_unexpected_status=True,
    ) as client:
        _withdraw_and_wait(client, models)


def _withdraw_and_wait(client: Any, models: Any) -> None:
    """12.50 out of 40, under AUTO_PAY_LIMIT: the worker pays it without an admin."""
    created = _module("api.payments.create_payment").sync_detailed(
        client=client, idempotency_key=str(uuid.uuid4()),
        body=models.WithdrawalBody(amount=12.5, method=models.WithdrawalBodyMethod.PAYPAL,
                                   destination="payee@example.com"))
    assert created.status_code == 202, created.content
    payment = created.parsed.data
    assert payment.status == "pending" and payment.amount == 12.5

    get_payment = _module("api.payments.get_payment")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = get_payment.sync(client=client, id=payment.id).data.status
        if status in ("paid", "failed"):
            break
        time.sleep(0.1)
    assert status == "paid"
    me = _module("api.auth.get_auth_me").sync(client=client).data
    assert me.balance == 27.5


def test_typescript_types_compile_with_a_typed_sign_in(served: Path, npm_tools: Path) -> None:
    (npm_tools / "generated").mkdir(exist_ok=True)
    tools = npm_tools / "node_modules" / ".bin"
    run(tools / "openapi-typescript", served, "-o", npm_tools / "generated" / "api.ts",
        cwd=npm_tools)
    run(tools / "tsc", "--noEmit", "-p", ".", cwd=npm_tools)
