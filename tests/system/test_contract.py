"""The served document is a contract: schemathesis with every check against the real app.

Each operation, as a user and as an admin: never a 5xx, every answer on the schema (status, media
type, body), what the document calls valid *accepted* (positive data), what it calls invalid
*refused* (negative data), required headers required; then the stateful phase follows the document's links from answers to the
operations that take their ids. Examples are bounded (CONTRACT_EXAMPLES, CONTRACT_STEPS) to fit CI.

A 422 answering valid data is accepted only with a code other than ``invalid``: such a code
names a rule no schema can state (a balance, MIN_WITHDRAWAL, another row's state; docs/api.md
"Errors"), whereas ``invalid`` says the request broke the schema, which valid data cannot.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.fixtures.live import SKIP, ThreadedServer, explain, fuzz, identities, live_server  # noqa: F401
from web.docs import document

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "10"))
ONLY = os.environ.get("CONTRACT_ONLY", "")  # a path prefix, to test one resource harder by hand
STEPS = int(os.environ.get("CONTRACT_STEPS", "12"))
# Bounded by the examples; the timeout only leaves room for a loaded machine.
pytestmark = [pytest.mark.contract, pytest.mark.committed, pytest.mark.timeout(600)]
# ``positive_data_accepted`` replaces the first; the second would flag the identity every case is
# sent with, which replaces whatever credentials it generated (test_openapi_contract checks that
# every secured operation refuses a request without them).
EXCLUDED = [positive_data_acceptance, ignored_auth]


def _business_refusal(response: Any) -> bool:
    if response.status_code != 422:
        return False
    try:
        return json.loads(response.content).get("code") not in (None, "invalid")
    except ValueError:
        return False


def positive_data_accepted(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """schemathesis's ``positive_data_acceptance``, with a business 422 accepted."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except Failure:
        if _business_refusal(response):
            return None
        raise


@pytest.mark.parametrize("who", ["user", "admin"])
def test_every_operation_accepts_valid_and_refuses_invalid_data(
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
                fuzz(operation, live_server.url, identities[who], mode, EXAMPLES,
                           excluded=EXCLUDED, added=[positive_data_accepted])
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.path
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (gather every operation's failures)
                failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: "
                                f"{explain(exc)}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("who", ["user", "admin"])
def test_stateful_phase_follows_the_links(
    live_server: ThreadedServer, identities: dict[str, dict[str, str]], who: str
) -> None:
    schema = schemathesis.openapi.from_dict(document()).exclude(
        path_regex="^/(ws|metrics|api/docs)$")
    base = schema.as_state_machine()
    headers = identities[who]

    class Machine(base):  # type: ignore[valid-type,misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            case.headers = {**(case.headers or {}), **headers}  # checks see what was sent
            return {"base_url": live_server.url}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, excluded_checks=EXCLUDED,
                                   additional_checks=[positive_data_accepted],
                                   transport_kwargs=kwargs or None)

    Machine.run(settings=hypothesis_settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), derandomize=True))
