"""Every route with a path parameter, taken from the app's own router (so a new route is covered
without editing this file), called with ids no row can have: never a 500, always the envelope,
and an out-of-range id is a 404."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from sqlalchemy.orm import Session

from common.config import Settings
from tests.fixtures.factories import auth_headers, make_user

# 5,000 digits: past Python's 4,300-digit int() limit. BIGINT + 1, zero and negatives: no row.
HUGE = "9" * 5000
MAX_ID = 2**63 - 1  # BIGINT
OUT_OF_RANGE = [HUGE, str(MAX_ID + 1), "0", "-1", "-" + HUGE, "00000000000000000000000001"]
NOT_NUMBERS = ["abc", "1e3", "1.5", "²", "١٢", "%00", "%F0%9F%92%A5", "1%20", "x" * 5000]
_PARAM = re.compile(r"\{[^}]+\}")


def _routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, canonical path) of every route whose path has a parameter."""
    found = []
    for resource in app.router.resources():
        if not _PARAM.search(resource.canonical):
            continue
        for route in resource:
            if route.method not in ("HEAD", "OPTIONS", "*"):
                found.append((route.method, resource.canonical))
    return sorted(set(found))


@pytest.fixture
async def callers(client, session: Session, settings: Settings):  # type: ignore[no-untyped-def]
    user = make_user(session)
    admin = make_user(session, role="admin")
    session.commit()
    return client, {"user": auth_headers(settings, user), "admin": auth_headers(settings, admin)}


async def test_no_path_value_makes_a_500(callers) -> None:  # type: ignore[no-untyped-def]
    client, headers = callers
    routes = _routes(client.server.app)
    assert len(routes) >= 20  # the router really was read
    failures = []
    for method, path in routes:
        who = headers["admin" if "/admin/" in path else "user"]
        for value in OUT_OF_RANGE + NOT_NUMBERS:
            url = _PARAM.sub(value, path)
            resp = await client.request(method, url, headers=who, json={})
            body = await resp.json(content_type=None) if resp.content_type == "application/json" else None
            problem = None
            if resp.status >= 500 or not (isinstance(body, dict) and body.get("success") is False):
                problem = f"{resp.status} {str(body)[:200]}"
            elif "{network}" not in path and value in OUT_OF_RANGE and resp.status != 404:
                problem = f"{resp.status}, expected 404"
            if problem:
                failures.append(f"{method} {url[:80]}: {problem}")
    assert not failures, "\n".join(failures)
