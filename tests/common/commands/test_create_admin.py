"""``savebucks create-admin``: creates the admin once, promotes and updates it on later runs."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from common.cli import main
from common.models import AuditLog, User
from common.security.passwords import verify_password


def _users(engine: Engine) -> list[User]:
    with Session(engine) as s:
        return list(s.scalars(select(User).order_by(User.id)))


def test_create_admin_is_idempotent(committed: Engine, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SAVEBUCKS_ADMIN_PASSWORD", "first admin password")
    assert main(["create-admin", "--email", "Ops@Example.com"]) == 0
    assert "created admin" in capsys.readouterr().out
    monkeypatch.setenv("SAVEBUCKS_ADMIN_PASSWORD", "second admin password")
    assert main(["create-admin", "--email", "ops@example.com"]) == 0
    assert "updated admin" in capsys.readouterr().out
    users = _users(committed)
    assert len(users) == 1 and users[0].role == "admin" and users[0].status == "active"
    assert verify_password("second admin password", users[0].password_hash)


def test_create_admin_promotes_an_existing_user(committed: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with Session(committed) as s, s.begin():
        s.add(User(email="boss@example.com", password_hash="x", name="Boss", status="suspended"))
    monkeypatch.setenv("SAVEBUCKS_ADMIN_PASSWORD", "a good password")
    assert main(["create-admin", "--email", "BOSS@example.com"]) == 0
    (user,) = _users(committed)
    assert (user.role, user.status, user.name) == ("admin", "active", "Boss")
    with Session(committed) as s:
        actions = set(s.scalars(select(AuditLog.action)).all())
        assert {"user.role", "user.status"} <= actions
        assert s.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize("password", ["short", "x" * 129])
def test_create_admin_refuses_bad_passwords(committed: Engine, monkeypatch, password: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SAVEBUCKS_ADMIN_PASSWORD", password)
    assert main(["create-admin", "--email", "ops@example.com"]) == 2
    assert _users(committed) == []


def test_create_admin_without_password_or_terminal(committed: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SAVEBUCKS_ADMIN_PASSWORD", raising=False)
    assert main(["create-admin", "--email", "ops@example.com"]) == 2
