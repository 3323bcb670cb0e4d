"""Access tokens: short-lived HS256 JWTs, checked strictly.

Decoding names its one algorithm and requires every registered claim we issue, so ``alg: none``,
another algorithm, a missing ``exp``, a wrong issuer or audience, or a token of another ``type``
(a refresh token, say) never passes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from common.config import Settings

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "sub", "type", "iss", "aud", "jti"]


class InvalidToken(Exception):
    """The token cannot be trusted; the reason is for logs, never for the client."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    email: str
    role: str
    jti: str
    issued_at: int
    expires_at: int


def issue_access_token(
    settings: Settings, *, user_id: int, email: str, role: str, now: float | None = None
) -> str:
    issued = int(now if now is not None else time.time())
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "userId": user_id,
        "email": email,
        "role": role,
        "iat": issued,
        "nbf": issued,
        "exp": issued + settings.access_token_ttl,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(payload, settings.jwt_secret, algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str, *, leeway: float = 0) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=leeway,
            options={"require": _REQUIRED},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(type(exc).__name__) from None
    if claims.get("type") != "access":
        raise InvalidToken("not an access token")
    user_id = claims.get("userId")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or claims["sub"] != str(user_id):
        raise InvalidToken("subject mismatch")
    if not isinstance(claims.get("role"), str) or not isinstance(claims.get("email"), str):
        raise InvalidToken("malformed claims")
    return AccessClaims(
        user_id=user_id,
        email=claims["email"],
        role=claims["role"],
        jti=str(claims["jti"]),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
    )


class VerifiedTokens:
    """Access tokens this process has already verified, so a busy client's token is checked once.

    The key is the whole token (its signature included) with the verifying key, issuer and
    audience, so only a byte-identical token under the same settings hits. A hit still checks
    ``exp`` (against ``time.time()``): a token never outlives its expiry. The oldest entries go
    first once ``size`` is reached.
    """

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._claims: dict[tuple[str, str, str, str], AccessClaims] = {}

    def decode(self, settings: Settings, token: str) -> AccessClaims:
        key = (token, settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience)
        claims = self._claims.get(key)
        if claims is None:
            claims = decode_access_token(settings, token)
            if len(self._claims) >= self.size:
                del self._claims[next(iter(self._claims))]
            self._claims[key] = claims
        elif claims.expires_at <= time.time():
            del self._claims[key]
            raise InvalidToken("ExpiredSignatureError")
        return claims
