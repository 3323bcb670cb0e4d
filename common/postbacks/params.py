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
from collections.abc import Iterable, Mapping
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
# Names that carry a signature, a hash or a secret in some scheme, beyond those our adapters
# declare (``Adapter.signature_params``): a name a network adds later is hidden too.
_SIGNATURE_LIKE = re.compile(r"sig|hash|secret|token|verif|passw|api[_-]?key", re.IGNORECASE)


def redacted(params: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``params`` as support may see them: every value under ``names`` or a signature-like name
    replaced by ``REDACTED`` (a stored signature could be tried against guessed secrets)."""
    hidden = set(names)
    return {k: REDACTED if k in hidden or _SIGNATURE_LIKE.search(k) else v
            for k, v in params.items()}
