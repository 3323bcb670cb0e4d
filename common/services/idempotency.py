"""``Idempotency-Key``: per user, the body's hash and the first response, kept 24 hours.

The key row is inserted and COMMITTED before the work (``claim_key``), so concurrent requests
with one key meet on the unique constraint: one executes, the others get 409 until the answer is
stored, then the stored answer. A key is scoped to its user: user B never sees user A's reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from common.errors import Conflict
from common.models.payments import IdempotencyKey

TTL_SECONDS = 86_400
_k = IdempotencyKey.__table__

# A new key, or an expired one taken over; a live key is left alone (nothing returned).
_CLAIM = text(
    """
    INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)
    VALUES (:user_id, :key, :hash, now() + make_interval(secs => :ttl))
    ON CONFLICT (user_id, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, response_status = NULL, response_body = NULL,
            expires_at = EXCLUDED.expires_at, created_at = now()
        WHERE idempotency_keys.expires_at <= now()
    RETURNING id
    """
)


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: dict[str, Any]


def claim_key(session: Session, *, user_id: int, key: str, request_hash: bytes) -> Stored | None:
    """None: the caller owns the key and must do the work. ``Stored``: replay it.
    Raises ``Conflict`` for another body, or while the first request is still running."""
    params = {"user_id": user_id, "key": key, "hash": request_hash, "ttl": TTL_SECONDS}
    if session.execute(_CLAIM, params).first() is not None:
        return None
    row = session.execute(
        select(_k.c.request_hash, _k.c.response_status, _k.c.response_body)
        .where(_k.c.user_id == user_id, _k.c.key == key)
    ).one()
    if bytes(row.request_hash) != request_hash:
        raise Conflict("Idempotency-Key already used with a different body")
    if row.response_status is None:
        raise Conflict("A request with this Idempotency-Key is still in progress")
    return Stored(row.response_status, row.response_body)


def store_response(session: Session, *, user_id: int, key: str, status: int, body: dict[str, Any]) -> None:
    session.execute(
        update(_k).where(_k.c.user_id == user_id, _k.c.key == key)
        .values(response_status=status, response_body=body)
    )


def release_key(session: Session, *, user_id: int, key: str) -> None:
    """Forget a key whose request failed unexpectedly, so that the client may retry it."""
    session.execute(delete(_k).where(_k.c.user_id == user_id, _k.c.key == key,
                                     _k.c.response_status.is_(None)))


def purge_expired(session: Session) -> int:
    return session.execute(delete(_k).where(_k.c.expires_at <= text("now()"))).rowcount
