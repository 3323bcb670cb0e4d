"""Schemathesis against the live app and its own document: no 5xx, no response off the schema.

The app runs for real (pools, threads, commits) in a thread of its own, since schemathesis sends
blocking requests; each operation gets positive and negative cases, as a user and as an admin.
Examples are bounded per operation so the run stays within a few minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from common.config import Settings
from common.models.offers import Offer
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.live_server import ThreadedServer
from web.docs import document

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
ONLY = os.environ.get("FUZZ_ONLY", "")  # a path prefix, to fuzz one resource harder by hand
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Not HTTP request/response operations: the upgrade, and Prometheus text.
SKIP = {("GET", "/ws"), ("GET", "/metrics"), ("GET", "/api/docs")}
_ROOMY = {name: "100000/minute" for name in (
    "rate_limit_login", "rate_limit_login_email", "rate_limit_register", "rate_limit_postback",
    "rate_limit_chat", "rate_limit_withdrawal", "rate_limit_postback_ip",
)}


@pytest.fixture
def live_server(settings: Settings, committed: Engine) -> Iterator[ThreadedServer]:
    from web.app import create_app

    server = ThreadedServer(create_app(settings.model_copy(update=_ROOMY)))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def identities(committed: Engine, settings: Settings) -> dict[str, dict[str, str]]:
    with Session(committed, expire_on_commit=False) as session:
        user = make_user(session, balance="50")
        admin = make_user(session, role="admin")
        for n, status in enumerate(("active", "active", "pending")):
            session.add(Offer(title=f"Offer {n}", description="d", category="games",
                              network="demo", external_id=f"fuzz-{n}", payout=Decimal("1.50"),
                              status=status))
        session.commit()
    return {"user": auth_headers(settings, user), "admin": auth_headers(settings, admin)}


def _fuzz(operation, url: str, headers: dict[str, str], mode: GenerationMode) -> None:  # type: ignore[no-untyped-def]
    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck), derandomize=True)
    def run(case) -> None:  # type: ignore[no-untyped-def]
        merged = {**(case.headers or {}), **headers}  # ours win over generated credentials
        response = case.call(base_url=url, headers=merged)
        case.validate_response(response, checks=CHECKS)

    run()


def _explain(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_explain(e) for e in exc.exceptions)
    return str(exc)[:1200]


@pytest.mark.committed
@pytest.mark.parametrize("who", ["user", "admin"])
def test_no_5xx_and_every_response_matches_the_schema(
    live_server: ThreadedServer, identities: dict[str, dict[str, str]], who: str
) -> None:
    schema = schemathesis.openapi.from_dict(document())
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP or not operation.path.startswith(ONLY):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, live_server.url, identities[who], mode)
            except Unsatisfiable:  # nothing to negate: no parameters and no body
                assert mode is GenerationMode.NEGATIVE, operation.path
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (gather every operation's failures)
                failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}]: {_explain(exc)}"
                )
    assert not failures, "\n\n".join(failures)
