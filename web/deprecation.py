"""Retiring a route (docs/api.md "Versioning"): ``@deprecated(...)`` on its handler makes every
answer of it, errors included, carry ``Deprecation`` (RFC 9745: when it was deprecated),
``Sunset`` (RFC 8594: when it stops answering) and, when there is one, a ``Link`` to what replaces
it; the OpenAPI document marks the operation ``deprecated`` and names the headers.

The middleware adds the headers (``headers_for``), so a handler that raises gets them too.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any, TypeVar

from aiohttp import web

from web.openapi import along_wrappers

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Retirement:
    since: dt.datetime
    sunset: dt.datetime
    successor: str | None = None

    def headers(self) -> dict[str, str]:
        out = {"Deprecation": f"@{int(self.since.timestamp())}",
               "Sunset": format_datetime(self.sunset.astimezone(dt.UTC), usegmt=True)}
        if self.successor:
            out["Link"] = f'<{self.successor}>; rel="successor-version"'
        return out


def deprecated(*, since: dt.datetime, sunset: dt.datetime,
               successor: str | None = None) -> Callable[[H], H]:
    """Mark a handler as retired from ``since`` until ``sunset`` (both aware datetimes)."""
    if since.tzinfo is None or sunset.tzinfo is None or sunset <= since:
        raise ValueError("since and sunset are aware datetimes, sunset after since")
    retirement = Retirement(since, sunset, successor)

    def mark(handler: H) -> H:
        handler.retirement = retirement  # type: ignore[attr-defined]
        return handler

    return mark


def headers_for(request: web.Request) -> dict[str, str]:
    """The retirement headers of the route ``request`` matched (none for a live route)."""
    match = request.match_info
    if match is None:
        return {}
    return _headers(getattr(match, "handler", None))


@functools.cache
def _headers(handler: Any) -> dict[str, str]:
    # Once per route (every answer passes here): handlers and their marks are fixed at import.
    retirement = along_wrappers(handler, "retirement")
    return retirement.headers() if retirement is not None else {}
