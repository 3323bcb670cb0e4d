"""Idempotency-Key handling for write routes (withdrawals, balance adjustments).

``idempotency_key`` reads and bounds the header (the only place that does). ``run_once`` runs a
write with its key claimed in the same transaction (``common.services.idempotency``): the first
answer, success or refusal, is stored for the key and replayed (header ``Idempotent-Replayed``);
another body with the key gets 409, and so does a request whose twin is still running after
``IDEMPOTENCY_WAIT_MS``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from sqlalchemy.orm import Session

from common.errors import BadRequest
from common.models.payments import IDEMPOTENCY_KEY_MAX_LENGTH
from common.services.idempotency import Refused, Stored
from common.services.idempotency import run_once as run_once_in
from web.envelope import dumps, error, ok
from web.keys import DB, SETTINGS
from web.openapi import Header

T = TypeVar("T")
# Printable ASCII: what an HTTP header carries unambiguously, and what the column stores as is.
_SHAPE = re.compile(rf"[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}")
HEADER = Header(
    f"required, 1..{IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters; the same key and body "
    "replay the first answer",
    {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
     "pattern": r"^[\x21-\x7e]+$"})


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not _SHAPE.fullmatch(key):
        raise BadRequest(f"Idempotency-Key header required: 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} "
                         "printable ASCII characters")
    return key


def request_hash(payload: Any) -> bytes:
    """The request's fingerprint: keys sorted, so their order does not matter."""
    try:
        canonical = orjson.dumps(payload, default=str, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # orjson takes no integer past 64 bits (an ignored field may hold one): the standard
        # library writes any. Only such bodies take this path, so stored fingerprints stay valid.
        canonical = json.dumps(payload, default=str, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).digest()


def _replay(stored: Stored) -> web.Response:
    headers = {"Idempotent-Replayed": "true"}
    if stored.status < 400:
        return ok(stored.body.get("data"), status=stored.status, headers=headers)
    return error(stored.status, stored.body.get("message", ""), errors=stored.body.get("errors"),
                 code=stored.body.get("code"), headers=headers)


async def run_once(
    request: web.Request,
    work: Callable[[Session, int], T],
    /,
    *,
    owner_id: int,
    key: str,
    fingerprint: bytes,
    status: int,
    data: Callable[[T], Any],
) -> T | web.Response:
    """``work(session, claim_id)``'s result when this request executed it (its answer, ``status``
    with ``data(result)``, is stored with it), or the stored answer's response to send. A
    refusal is raised, after it was stored."""

    def answer(result: T) -> tuple[int, dict[str, Any]]:
        return status, {"data": orjson.loads(dumps(data(result)))}

    outcome = await request.app[DB].run(
        run_once_in, user_id=owner_id, key=key, request_hash=fingerprint,
        wait_ms=request.app[SETTINGS].idempotency_wait_ms, work=work, answer=answer,
    )
    if isinstance(outcome, Refused):
        raise outcome.error
    if isinstance(outcome, Stored):
        return _replay(outcome)
    return outcome
