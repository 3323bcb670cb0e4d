"""Rows for tests: they flush (so ids exist) but never commit; the test's rollback removes them."""

from __future__ import annotations

import itertools
from decimal import Decimal

from sqlalchemy.orm import Session

from common.config import Settings
from common.models import User
from common.security.tokens import issue_access_token

# Cost 4: the cheapest bcrypt accepts; only for rows a test makes directly.
_PASSWORD_HASH_OF_SECRET = "$2b$04$Ec4r3rYb3gSxO0bBBmHeT.dGxlwP4gMl2U3rjd6E5Yd5bH2XcI9yC"
_counter = itertools.count(1)


def make_user(
    session: Session,
    *,
    email: str | None = None,
    name: str | None = None,
    role: str = "user",
    status: str = "active",
    balance: Decimal | str = "0",
    password_hash: str = _PASSWORD_HASH_OF_SECRET,
) -> User:
    n = next(_counter)
    user = User(
        email=email or f"user{n}@example.com",
        name=name or f"User {n}",
        role=role,
        status=status,
        balance=Decimal(balance),
        password_hash=password_hash,
    )
    session.add(user)
    session.flush()
    return user


def auth_headers(settings: Settings, user: User) -> dict[str, str]:
    token = issue_access_token(settings, user_id=user.id, email=user.email, role=user.role)
    return {"Authorization": f"Bearer {token}"}
