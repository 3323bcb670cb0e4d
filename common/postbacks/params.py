"""What a callback's parameters may weigh: the one bound on what is verified and stored.

Every callback's parameters are kept in ``postback_log`` (docs/money.md), so without a bound a
caller could store megabytes per request. At most ``MAX_PARAMS`` names (later values of a name
already kept still replace it, as a form field replaces the query's); a name longer than
``MAX_NAME`` or a value longer than ``MAX_VALUE`` characters keeps its start and ends with
``TRUNCATED``. No network we speak sends values near these sizes (ids are at most 128 characters,
signatures 64), so a truncated value only ever fails its check.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from typing import Any

MAX_PARAMS = 50
MAX_NAME = 64
MAX_VALUE = 256
TRUNCATED = "…[truncated]"


def bounded_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``pairs`` (query, then form) as the bounded dict that is verified and logged."""
    params: dict[str, str] = {}
    for name, value in pairs:
        name = storable(name, MAX_NAME)
        if name in params or len(params) < MAX_PARAMS:
            params[name] = storable(value, MAX_VALUE)
    return params


def storable(text: str, limit: int) -> str:
    """``text`` clipped to ``limit`` characters, in a form PostgreSQL's jsonb accepts (it refuses
    NUL, and UTF-8 has no unpaired surrogates): those become replacement characters."""
    if len(text) > limit:
        text = text[: limit - len(TRUNCATED)] + TRUNCATED
    if not text.isascii() or "\x00" in text:
        text = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text


REDACTED = "[redacted]"
# What makes a parameter's name look secret: a signature, hash, digest, key, credential or token in
# any scheme we know of or might meet. Matched against the name folded (compatibility forms and
# case: fullwidth letters, the long s, ``SIG``) with everything but letters and digits dropped,
# so separators hide nothing (``s_i_g``, ``api-key``, ``pass.word``).
_SECRET_LIKE = re.compile(
    r"sig|hash|hmac|checksum|md5|sha|crc|digest|key|auth|pwd|passw|secret|token|verif|nonce|salt"
    r"|cred")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
# A value that looks like a digest or an encoded secret: 32 or more hex digits, or 40 or more
# base64 characters (a signature under a name no pattern foresees: ``s1g``, ``x``).
_DIGEST_LIKE = re.compile(r"[0-9a-fA-F]{32,}|[A-Za-z0-9+/_-]{40,}={0,2}")


def secret_like(name: str) -> bool:
    """Whether a parameter's name looks secret. A name that cannot be judged does: one bounded
    by ``bounded_params`` (its end, lost, may have said so), or one not ASCII once folded (a
    letter of another script that looks like a Latin one, an invisible character)."""
    if name.endswith(TRUNCATED):
        return True
    folded = unicodedata.normalize("NFKC", name).casefold()
    if not folded.isascii():
        return True
    return _SECRET_LIKE.search(_NOT_ALNUM.sub("", folded)) is not None


def redacted(params: Mapping[str, Any], *, shown: Collection[str],
             hidden: Collection[str]) -> dict[str, Any]:
    """``params`` as support may see them (a stored signature could be tried against guessed
    secrets), redacted by default: a name in ``hidden`` (the schemes' signatures) never shows; a
    name in ``shown`` (the schemes' known fields, none of them secret) always does; any other
    shows only when neither its name (``secret_like``) nor its value looks secret."""
    return {k: v if k not in hidden and (k in shown or not _looks_secret(k, v)) else REDACTED
            for k, v in params.items()}


def _looks_secret(name: str, value: Any) -> bool:
    return secret_like(name) or not isinstance(value, str) or _DIGEST_LIKE.fullmatch(value) is not None
