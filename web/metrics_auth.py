"""Who may read ``GET /metrics``: anyone, or with ``METRICS_TOKEN`` set, whoever presents it.

The comparison is constant-time on bytes, so neither the answer's timing nor a non-ASCII header
tells anything about the token; the token is never logged nor echoed.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from common.errors import Unauthorized
from web.auth import bearer_token
from web.keys import SETTINGS


def _bytes(value: str) -> bytes:
    # Headers arrive decoded with surrogate escapes for bytes that are not UTF-8.
    return value.encode("utf-8", "surrogatepass")


def check_metrics_token(request: web.Request) -> None:
    """Raise ``Unauthorized`` (401) unless the scrape carries the configured token."""
    expected = request.app[SETTINGS].metrics_token
    if expected is None:
        return
    given = bearer_token(request) or ""
    if not hmac.compare_digest(_bytes(given), _bytes(expected)):
        raise Unauthorized("Metrics token required")
