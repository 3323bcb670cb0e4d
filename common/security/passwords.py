"""Password hashing: bcrypt over a fixed-length pre-hash of the password.

bcrypt reads at most 72 bytes and bcrypt 5 raises ``ValueError`` beyond that (and stops at a NUL
byte in other implementations). Every password is therefore first reduced to the base64 of its
HMAC-SHA256 (44 ASCII bytes, no NUL), as Dropbox does: long passwords keep all their entropy, none
is truncated, and one scheme covers every length, so a pre-hashed value can never be confused with
a password typed as-is. The HMAC key is a constant, not a secret: it only keeps these digests apart
from plain SHA-256 dumps of other sites ("password shucking").

These functions burn CPU for a quarter of a second at 12 rounds: callers on an event loop run them
in a bounded thread pool (bcrypt releases the GIL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

MIN_LENGTH = 8
MAX_LENGTH = 128
_PREHASH_KEY = b"savebucks.password.v1"


def _prehash(password: str) -> bytes:
    digest = hmac.new(_PREHASH_KEY, password.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return base64.b64encode(digest.digest())


def hash_password(password: str, *, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches; a malformed stored hash is a mismatch, never an error."""
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode("ascii"))
    except ValueError:
        return False

