"""Account state that admins (and the CLI) change: status and role.

A status or role change is one guarded UPDATE on the locked user row, the revocation of the user's
refresh tokens where it takes access away, an audit row, and an outbox event to the user
(``account:status`` / ``account:role``). After commit that event reaches every web instance: the
account gate there re-reads the user (so a suspended or banned user gets 403 on its next request
although its access token has not expired) and the WebSocket hub closes the user's sockets (4403).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.errors import Forbidden, InvalidInput, NotFound
from common.events import emit
from common.models import RefreshToken, User
from common.models.users import ROLES, USER_STATUSES
from common.services.audit import record_audit
from common.services.payment_review import hold_pending_for_review
from common.services.payments import cancel_pending_for_ban
from common.sql import affected

_tokens = RefreshToken.__table__


def revoke_refresh_tokens(session: Session, *, user_id: int, reason: str) -> int:
    """Revoke every live refresh token of a user; returns how many."""
    result = session.execute(
        update(_tokens)
        .where(_tokens.c.user_id == user_id, _tokens.c.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC), revoked_reason=reason)
    )
    return affected(result)


def _locked(session: Session, user_id: int) -> User:
    user = session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise NotFound("User not found")
    return user


def _change(session: Session, *, field: str, value: str, allowed: tuple[str, ...],
            actor_id: int | None, user_id: int, reason: str, ip: str | None,
            trace_id: str | None) -> tuple[User, bool]:
    """Set ``users.<field>`` (``status`` or ``role``) on the locked row, audited and announced as
    ``account:<field>``; a no-op when it already has that value. Returns (user, changed)."""
    if value not in allowed:
        raise InvalidInput(f"Unknown {field}", errors=[f"{field}: one of {', '.join(allowed)}"])
    if actor_id is not None and actor_id == user_id:
        raise Forbidden(f"You cannot change your own {field}")
    user = _locked(session, user_id)
    column = getattr(User, field)
    before = getattr(user, field)
    if before == value:
        return user, False
    session.execute(update(User).where(User.id == user_id, column == before).values({field: value}))
    record_audit(
        session, action=f"user.{field}", actor_id=actor_id, target_type="user", target_id=user_id,
        before={field: before}, after={field: value, "reason": reason}, ip=ip, trace_id=trace_id,
    )
    emit(session, event=f"account:{field}", data={field: value}, user_id=user_id)
    return user, True


def set_user_status(session: Session, *, actor_id: int | None, user_id: int, status: str,
                    reason: str, ip: str | None, trace_id: str | None) -> User:
    """Make a user ``active``, ``suspended`` or ``banned``. Setting the current status is a no-op.

    ``actor_id`` None means the operator's CLI. An admin cannot change its own status. Anything
    but ``active`` revokes the user's refresh tokens.
    """
    user, changed = _change(session, field="status", value=status, allowed=USER_STATUSES,
                            actor_id=actor_id, user_id=user_id, reason=reason, ip=ip,
                            trace_id=trace_id)
    if changed and status != "active":
        revoke_refresh_tokens(session, user_id=user_id, reason=status)
    if changed and status == "banned":
        _cancel_withdrawals(session, user_id=user_id, actor_id=actor_id, ip=ip, trace_id=trace_id)
    if changed and status == "suspended":
        hold_pending_for_review(session, user_id=user_id, because="suspended",
                                audit={"actor_id": actor_id, "ip": ip, "trace_id": trace_id})
    session.refresh(user)
    return user


def _cancel_withdrawals(session: Session, *, user_id: int, actor_id: int | None,
                        ip: str | None, trace_id: str | None) -> None:
    """A ban cancels the member's pending withdrawals and gives their holds back (docs/risk.md)."""
    cancelled = cancel_pending_for_ban(session, user_id=user_id)
    if cancelled:
        record_audit(session, action="payment.cancel_on_ban", actor_id=actor_id,
                     target_type="user", target_id=user_id, before={"status": "pending"},
                     after={"status": "cancelled", "payments": cancelled}, ip=ip,
                     trace_id=trace_id)


def set_user_role(session: Session, *, actor_id: int | None, user_id: int, role: str,
                  reason: str, ip: str | None, trace_id: str | None) -> User:
    """Make a user a ``user`` or an ``admin``. Setting the current role is a no-op.

    Access tokens carry the role: after a demotion the account gate refuses the old admin
    tokens (401, so the client refreshes and gets one with the new role).
    """
    user, _ = _change(session, field="role", value=role, allowed=ROLES, actor_id=actor_id,
                      user_id=user_id, reason=reason, ip=ip, trace_id=trace_id)
    session.refresh(user)
    return user


def ensure_admin(
    session: Session, *, email: str, password_hash: str, name: str
) -> tuple[User, bool]:
    """Make ``email`` an active admin with this password; returns (user, created).

    Idempotent: an existing account (any case of the email) is promoted, re-activated and given
    the password, never duplicated.
    """
    user = session.scalar(
        select(User).where(func.lower(User.email) == email.lower()).with_for_update()
    )
    if user is None:
        user = User(email=email, password_hash=password_hash, name=name, role="admin")
        session.add(user)
        session.flush()
        record_audit(session, action="user.create_admin", actor_id=None, target_type="user",
                     target_id=user.id, after={"email": email, "role": "admin"})
        session.refresh(user)
        return user, True
    user.password_hash = password_hash
    session.flush()
    revoke_refresh_tokens(session, user_id=user.id, reason="password_change")
    # The operator's CLI: no actor, request or trace.
    operator = {"actor_id": None, "ip": None, "trace_id": None}
    set_user_role(session, user_id=user.id, role="admin", reason="create-admin", **operator)
    return set_user_status(session, user_id=user.id, status="active", reason="create-admin",
                           **operator), False
