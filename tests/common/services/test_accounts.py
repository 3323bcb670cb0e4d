"""Suspended and banned users are shut out at once, with tokens still valid; status and role
changes are audited, revoke sessions and tell the user's sockets (``account:status``)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.errors import Forbidden, InvalidInput, NotFound
from common.models import AuditLog, OutboxEvent, RefreshToken
from common.services.accounts import set_user_role, set_user_status
from tests.fixtures.auth import PASSWORD, api, bearer, make_client, register  # noqa: F401
from tests.fixtures.factories import make_user
from web.auth import ACCOUNT_GATE


async def _status_until(client: TestClient, token: str, expected: int, deadline: float = 5.0) -> int:
    """Poll /auth/me until it answers ``expected`` (events travel through Redis pub/sub)."""
    end = time.monotonic() + deadline
    while True:
        status = (await client.get("/api/auth/me", headers=bearer(token))).status
        if status == expected or time.monotonic() > end:
            return status
        await asyncio.sleep(0.02)


def _change(**kwargs: object) -> dict[str, object]:
    return {"actor_id": None, "reason": "test", "ip": "10.0.0.1", "trace_id": "trace-status-01", **kwargs}


@pytest.mark.parametrize("status", ["suspended", "banned"])
async def test_blocked_user_is_refused_everywhere(api, bound_db, session: Session, status: str) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    uid, token = data["user"]["id"], data["accessToken"]
    assert (await api.get("/api/auth/me", headers=bearer(token))).status == 200
    await bound_db.run(set_user_status, **_change(user_id=uid, status=status))
    # The access token has not expired, yet every authenticated request is a 403 now.
    assert await _status_until(api, token, 403) == 403
    body = await (await api.get("/api/auth/me", headers=bearer(token))).json()
    assert body["code"] == "forbidden"
    assert (await api.patch("/api/auth/me", json={"name": "x"}, headers=bearer(token))).status == 403
    login = await api.post("/api/auth/login", json={"email": data["user"]["email"], "password": PASSWORD})
    assert login.status == 403
    refresh = await api.post("/api/auth/refresh", json={"refreshToken": data["refreshToken"]})
    assert refresh.status == 403
    # Refresh tokens were revoked, the change audited and announced to the user's sockets.
    assert set(session.scalars(select(RefreshToken.revoked_reason)).all()) == {status}
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "user.status")).one()
    assert audit.before == {"status": "active"} and audit.after == {"status": status, "reason": "test"}
    assert audit.ip == "10.0.0.1" and audit.trace_id == "trace-status-01"
    event = session.scalars(select(OutboxEvent).where(OutboxEvent.event == "account:status")).one()
    assert (event.target, event.target_id, event.data) == ("user", uid, {"status": status})
    # Re-activated: the same token works again.
    await bound_db.run(set_user_status, **_change(user_id=uid, status="active"))
    assert await _status_until(api, token, 200) == 200


async def test_gate_reads_the_row_while_its_subscription_is_down(api, bound_db) -> None:  # type: ignore[no-untyped-def]
    data = await register(api)
    gate = api.app[ACCOUNT_GATE]
    await gate.stop()
    assert gate.ready is False
    await bound_db.run(set_user_status, **_change(user_id=data["user"]["id"], status="suspended"))
    # No event can reach this process now; the row is read instead, on this very request.
    assert (await api.get("/api/auth/me", headers=bearer(data["accessToken"]))).status == 403


async def test_gate_loads_blocked_users_when_it_starts(make_client, session: Session, settings) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.factories import auth_headers

    banned = make_user(session, status="banned")
    session.commit()
    client = await make_client()
    assert banned.id in client.app[ACCOUNT_GATE].blocked
    assert (await client.get("/api/auth/me", headers=auth_headers(settings, banned))).status == 403


async def test_demoted_admin_tokens_stop_working(api, bound_db, session: Session, settings) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.factories import auth_headers

    admin = make_user(session, role="admin")
    session.commit()
    headers = auth_headers(settings, admin)
    token = headers["Authorization"].removeprefix("Bearer ")
    assert (await api.get("/api/auth/me", headers=headers)).status == 200
    await bound_db.run(set_user_role, **_change(user_id=admin.id, role="user"))
    assert await _status_until(api, token, 401) == 401
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "user.role")).one()
    assert audit.before == {"role": "admin"} and audit.after["role"] == "user"


def test_status_changes_are_checked(session: Session) -> None:
    user = make_user(session)
    with pytest.raises(InvalidInput):
        set_user_status(session, **_change(user_id=user.id, status="deleted"))
    with pytest.raises(NotFound):
        set_user_status(session, **_change(user_id=user.id + 999, status="banned"))
    with pytest.raises(Forbidden):
        set_user_status(session, **_change(user_id=user.id, status="banned", actor_id=user.id))
    with pytest.raises(InvalidInput):
        set_user_role(session, **_change(user_id=user.id, role="root"))
    # Setting the status a user already has changes nothing and announces nothing.
    assert set_user_status(session, **_change(user_id=user.id, status="active")).status == "active"
    assert session.scalars(select(OutboxEvent)).all() == []
    assert session.scalars(select(AuditLog)).all() == []
