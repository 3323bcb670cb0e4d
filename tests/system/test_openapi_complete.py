"""A route that exists without ``@describe`` fails the suite."""

from __future__ import annotations

from web.docs import documented_routes
from web.openapi import undescribed


def test_every_api_route_is_described() -> None:
    assert undescribed(documented_routes()) == []
