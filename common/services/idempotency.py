"""``Idempotency-Key``: per user, the body's hash and the first answer, kept 24 hours.

``run_once`` claims the key INSIDE the transaction of the work it guards, so the key and the
work commit or roll back together: a request cancelled at shutdown or a crashed process leaves
either both (the retry replays the answer) or neither (the retry does the work), never a key
without its work or work without its key.

Concurrent requests with one key meet on the unique ``(user_id, key)``: the second one's insert
waits for the first transaction (at most ``lock_timeout``, then 409), and then replays its stored
answer, or claims the key itself if the first rolled back. A refusal (a ``DomainError`` such as
422) rolls the work back to a savepoint and is stored for the key in the same transaction, so it
is replayed too. A key is scoped to its user: user B never sees user A's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg import errors as pg_errors
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from common.effects import after_commit
from common.errors import Conflict, DomainError
from common.models.payments import IdempotencyKey
from common.sql import affected

T = TypeVar("T")
TTL_SECONDS = 86_400
_k = IdempotencyKey.__table__

# An expired key is deleted rather than updated: the request that takes it over gets a row (and
# an id) of its own. A live key, committed or not, is left alone.
_EXPIRED = text(
    "DELETE FROM idempotency_keys WHERE user_id = :user_id AND key = :key AND expires_at <= now()"
)
# Waits for an uncommitted row with the same key (another request's transaction) to commit or
# roll back; then inserts nothing (replay) or the claim (the other one rolled back).
_CLAIM = text(
    """
    INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)
    VALUES (:user_id, :key, :hash, now() + make_interval(secs => :ttl))
    ON CONFLICT (user_id, key) DO NOTHING
    RETURNING id
    """
)


@dataclass(frozen=True, slots=True)
class Stored:
    """The first answer for a key: replay it."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refused:
    """This request's refusal, stored for its key; the caller raises ``error`` after commit."""

    error: DomainError


def claim_key(
    session: Session, *, user_id: int, key: str, request_hash: bytes, wait_ms: int
) -> int | Stored:
    """The claim's id (the caller owns the key in this transaction and does the work), or the
    ``Stored`` answer to replay. Raises ``Conflict`` for another body, or when the request
    holding the key does not finish within ``wait_ms``."""
    params = {"user_id": user_id, "key": key, "hash": request_hash, "ttl": TTL_SECONDS}
    # Only the claim waits so briefly; the work keeps the connection's own lock_timeout.
    session.execute(text(f"SET LOCAL lock_timeout = {int(wait_ms)}"))
    try:
        session.execute(_EXPIRED, params)
        claimed = session.execute(_CLAIM, params).scalar()
    except OperationalError as exc:
        if isinstance(exc.orig, pg_errors.LockNotAvailable):
            raise Conflict("A request with this Idempotency-Key is still in progress; retry later") from None
        raise
    session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
    if claimed is not None:
        return int(claimed)
    row = session.execute(
        select(_k.c.request_hash, _k.c.response_status, _k.c.response_body)
        .where(_k.c.user_id == user_id, _k.c.key == key)
    ).first()
    if row is None:  # it expired and the purge took it in the meantime: the retry claims it
        raise Conflict("This Idempotency-Key just expired; retry")
    if bytes(row.request_hash) != request_hash:
        raise Conflict("Idempotency-Key already used with a different body")
    if row.response_status is None:  # only a row claimed by an older release (committed apart)
        raise Conflict("A request with this Idempotency-Key is still in progress; retry later")
    return Stored(row.response_status, row.response_body)


def store_response(session: Session, *, claim_id: int, status: int, body: dict[str, Any]) -> None:
    session.execute(
        update(_k).where(_k.c.id == claim_id).values(response_status=status, response_body=body)
    )


def run_once(
    session: Session,
    *,
    user_id: int,
    key: str,
    request_hash: bytes,
    wait_ms: int,
    work: Callable[[Session, int], T],
    answer: Callable[[T], tuple[int, dict[str, Any]]],
) -> T | Stored | Refused:
    """In the caller's transaction: claim ``key``, run ``work(session, claim_id)`` and store
    ``answer(result)`` (status, body) for the key. ``claim_id`` names this executed request
    (a fresh one each time the key is taken over after expiry)."""
    claimed = claim_key(session, user_id=user_id, key=key, request_hash=request_hash,
                        wait_ms=wait_ms)
    if isinstance(claimed, Stored):
        return claimed
    registered = after_commit(session).mark()
    savepoint = session.begin_nested()
    try:
        result = work(session, claimed)
        savepoint.commit()
    except DomainError as exc:
        # The refusal's writes and effects go; the key stays claimed, now with its refusal.
        savepoint.rollback()
        after_commit(session).forget_after(registered)
        store_response(session, claim_id=claimed, status=exc.status,
                       body={"message": exc.message, "errors": exc.errors, "code": exc.code})
        return Refused(exc)
    status, body = answer(result)
    store_response(session, claim_id=claimed, status=status, body=body)
    return result


def purge_expired(session: Session) -> int:
    return affected(session.execute(delete(_k).where(_k.c.expires_at <= text("now()"))))
