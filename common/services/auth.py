"""Accounts and sessions: registration, sign-in, refresh tokens, logout, password and profile.

Refresh tokens are opaque (``secrets.token_urlsafe(32)``: 256 bits) and stored only as their
SHA-256. The tokens descending from one sign-in share a ``family_id``. With rotation on, a refresh
marks its token used and hands out the next one of the family; a used token that comes back after
the grace period means a copy is in someone else's hands, and the whole family is revoked.
Refresh-token times come from the application clock (so tests move them with freezegun).

Passwords arrive here already hashed: bcrypt runs in the caller's bounded pool, not in a
transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.errors import Conflict, Forbidden, NotFound, Unauthorized
from common.models import RefreshToken, User
from common.services.accounts import revoke_refresh_tokens
from common.services.audit import record_audit
from common.services.referrals import record_abuse, referrer_by_code, signup_address
from common.services.risk_signals import record_listed_ip, record_signup
from common.sql import affected

_tokens = RefreshToken.__table__


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A user and the refresh token just issued to it (the access token is the caller's)."""

    user: User
    refresh_token: str | None


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _issue_refresh_token(
    session: Session, *, user_id: int, family_id: uuid.UUID, ttl: int, now: dt.datetime
) -> str:
    token = secrets.token_urlsafe(32)
    session.execute(
        insert(_tokens).values(
            user_id=user_id,
            token_hash=hash_refresh_token(token),
            family_id=family_id,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
    )
    return token


def _active_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    if user.status != "active":
        raise Forbidden(f"Account is {user.status}")
    return user


def register_user(
    session: Session,
    *,
    email: str,
    password_hash: str,
    name: str,
    refresh_ttl: int,
    ip: str | None,
    trace_id: str | None,
    referral_code: str | None = None,
) -> SignedIn:
    """Create a ``user`` account and sign it in. A taken email (any case) is a ``Conflict``; an
    unknown ``referral_code`` is ``InvalidInput`` and nothing is stored. With a known code the
    referrer is recorded for good, and a referrer who signed up from the same address is flagged
    to risk (``referral_abuse``): the relation stands, it earns nothing."""
    referrer = None if referral_code is None else referrer_by_code(session, referral_code)
    taken = session.scalar(select(User.id).where(func.lower(User.email) == email.lower()))
    if taken is not None:
        raise Conflict("Email is already registered", errors=["email: already registered"])
    address = signup_address(ip)
    user = _insert_user(session, email=email, password_hash=password_hash, name=name,
                        referred_by=referrer.id if referrer else None, signup_ip=address)
    if referrer is not None and address is not None and referrer.signup_ip == address:
        record_abuse(session, referrer_id=referrer.id, referee_id=user.id,
                     reason="shared_signup_ip")
    record_signup(session, user_id=user.id, address=address)
    record_audit(session, action="auth.register", actor_id=user.id, target_type="user",
                 target_id=user.id, ip=ip, trace_id=trace_id)
    return _sign_in(session, user, refresh_ttl=refresh_ttl, ip=ip, trace_id=trace_id)


def _insert_user(session: Session, **columns: Any) -> User:
    """Insert the user row; its referral code is the database's (a random draw that, once in
    about 10^15 sign-ups, meets an existing code: then it draws again)."""
    for _ in range(3):
        user = User(**columns)
        try:
            with session.begin_nested():
                session.add(user)
                session.flush()
        except IntegrityError as exc:
            if _constraint(exc) != "uq_users_referral_code":
                # A concurrent registration of the same email won the race.
                raise Conflict("Email is already registered",
                               errors=["email: already registered"]) from None
            continue
        session.refresh(user)
        return user
    raise RuntimeError("no unique referral code in 3 draws")


def _constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def sign_in(
    session: Session, *, user_id: int, refresh_ttl: int, ip: str | None, trace_id: str | None
) -> SignedIn:
    """Start a session (a new refresh-token family) for a user whose password was checked."""
    user = _active_user(session, user_id)
    record_listed_ip(session, user_id=user_id, ip=ip, seen_at="login")
    return _sign_in(session, user, refresh_ttl=refresh_ttl, ip=ip, trace_id=trace_id)


def _sign_in(
    session: Session, user: User, *, refresh_ttl: int, ip: str | None, trace_id: str | None
) -> SignedIn:
    token = _issue_refresh_token(
        session, user_id=user.id, family_id=uuid.uuid4(), ttl=refresh_ttl, now=now_utc()
    )
    record_audit(session, action="auth.login", actor_id=user.id, target_type="user",
                 target_id=user.id, ip=ip, trace_id=trace_id)
    return SignedIn(user, token)


def record_login_failure(
    session: Session,
    *,
    email: str,
    user_id: int | None,
    reason: str,
    ip: str | None,
    trace_id: str | None,
) -> None:
    record_audit(
        session, action="auth.login_failed", actor_id=None, target_type="user",
        target_id=user_id, after={"email": email[:254], "reason": reason}, ip=ip,
        trace_id=trace_id,
    )


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The outcome of a refresh: a user (and next token when rotating), or a detected reuse."""

    user: User | None
    refresh_token: str | None
    reused: bool = False


def refresh_session(
    session: Session,
    *,
    token: str,
    rotation: bool,
    grace_seconds: int,
    refresh_ttl: int,
    ip: str | None,
    trace_id: str | None,
) -> Refreshed:
    """Check a refresh token; rotate it when asked. Locks the token's row.

    A reuse past the grace period returns ``Refreshed(reused=True)`` rather than raising, so that
    the family's revocation commits; the caller answers 401.
    """
    now = now_utc()
    row = session.execute(
        select(_tokens).where(_tokens.c.token_hash == hash_refresh_token(token)).with_for_update()
    ).first()
    if row is None:
        raise Unauthorized("Invalid or expired refresh token")
    # A blocked account hears so (403) even though blocking also revoked its tokens.
    user = _active_user(session, row.user_id)
    if row.revoked_at is not None or row.expires_at <= now:
        raise Unauthorized("Invalid or expired refresh token")
    if not rotation:
        return Refreshed(user, None)
    if row.used_at is not None and now - row.used_at > dt.timedelta(seconds=grace_seconds):
        _revoke_family(session, row.family_id, reason="reuse", now=now)
        record_audit(session, action="auth.refresh_reuse", actor_id=user.id, target_type="user",
                     target_id=user.id, after={"family": str(row.family_id)}, ip=ip,
                     trace_id=trace_id)
        return Refreshed(None, None, reused=True)
    if row.used_at is None:
        session.execute(
            update(_tokens).where(_tokens.c.id == row.id, _tokens.c.used_at.is_(None))
            .values(used_at=now)
        )
    # Within the grace period a used token still refreshes: two tabs refreshing at once both
    # succeed, each with a token of the same family.
    next_token = _issue_refresh_token(
        session, user_id=user.id, family_id=row.family_id, ttl=refresh_ttl, now=now
    )
    return Refreshed(user, next_token)


def _revoke_family(session: Session, family_id: uuid.UUID, *, reason: str, now: dt.datetime) -> int:
    result = session.execute(
        update(_tokens)
        .where(_tokens.c.family_id == family_id, _tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return affected(result)


def logout(session: Session, *, token: str, ip: str | None, trace_id: str | None) -> bool:
    """Revoke the family of ``token`` (this sign-in on every rotation). Unknown tokens: no-op."""
    row = session.execute(
        select(_tokens.c.user_id, _tokens.c.family_id)
        .where(_tokens.c.token_hash == hash_refresh_token(token))
    ).first()
    if row is None:
        return False
    revoked = _revoke_family(session, row.family_id, reason="logout", now=now_utc())
    if revoked:
        record_audit(session, action="auth.logout", actor_id=row.user_id, target_type="user",
                     target_id=row.user_id, ip=ip, trace_id=trace_id)
    return revoked > 0


def change_password(
    session: Session,
    *,
    user_id: int,
    password_hash: str,
    refresh_ttl: int,
    ip: str | None,
    trace_id: str | None,
) -> SignedIn:
    """Store a new hash, revoke every refresh token of the user, start one fresh session."""
    user = _active_user(session, user_id)
    user.password_hash = password_hash
    session.flush()
    revoke_refresh_tokens(session, user_id=user_id, reason="password_change")
    record_audit(session, action="auth.password_change", actor_id=user_id, target_type="user",
                 target_id=user_id, ip=ip, trace_id=trace_id)
    return _sign_in(session, user, refresh_ttl=refresh_ttl, ip=ip, trace_id=trace_id)


def update_profile(session: Session, *, user_id: int, changes: dict[str, Any]) -> User:
    """Set ``name`` and/or ``avatar`` (already validated). Other keys are refused."""
    allowed = {k: v for k, v in changes.items() if k in ("name", "avatar")}
    if len(allowed) != len(changes):
        raise ValueError(f"not a profile field: {sorted(set(changes) - set(allowed))}")
    user = _active_user(session, user_id)
    for key, value in allowed.items():
        setattr(user, key, value)
    session.flush()
    session.refresh(user)
    return user
