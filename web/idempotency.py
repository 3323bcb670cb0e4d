"""Idempotency-Key handling for write routes (withdrawals, balance adjustments).

A key is claimed per owner with a hash of the request; the same key and request replay the first
answer, another request gets 409 (``claim_key``). The first answer, success or refusal, is stored
for the key; a crash releases the key so the client can retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from common.errors import DomainError
from common.services.idempotency import claim_key, release_key, store_response
from web.db import Database
from web.envelope import error, ok
from web.validation import BadRequest

T = TypeVar("T")
MAX_KEY_LENGTH = 255


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key header required (1..{MAX_KEY_LENGTH} characters)")
    return key


async def claim_or_replay(
    db: Database, *, owner_id: int, key: str, request_hash: bytes
) -> web.Response | None:
    """Claim ``key`` for this request, or the stored first answer when it was claimed before."""
    stored = await db.run(claim_key, user_id=owner_id, key=key, request_hash=request_hash)
    if stored is None:
        return None
    headers = {"Idempotent-Replayed": "true"}
    if stored.status < 400:
        return ok(stored.body.get("data"), status=stored.status, headers=headers)
    return error(stored.status, stored.body.get("message", ""), errors=stored.body.get("errors"),
                 code=stored.body.get("code"), headers=headers)


async def run_claimed(
    db: Database, fn: Callable[..., T], /, *, owner_id: int, key: str, **kwargs: Any
) -> T:
    """Run ``fn`` (which stores its success answer for ``key`` in its own transaction).

    A refusal is the first answer too, stored and replayed for this key; any other failure
    releases the key.
    """
    try:
        return await db.run(fn, key=key, **kwargs)
    except DomainError as exc:
        await db.run(store_response, user_id=owner_id, key=key, status=exc.status,
                     body={"message": exc.message, "errors": exc.errors, "code": exc.code})
        raise
    except BaseException:
        await db.run(release_key, user_id=owner_id, key=key)
        raise
