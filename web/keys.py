"""Typed keys for what the application and each request carry (every ``web.AppKey`` is here).

The classes that would import this module back are named for the type checker only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import redis.asyncio as aredis
from aiohttp import web

from common.config import Settings
from common.ratelimit import Limiter, SpentWindows
from common.security.tokens import AccessClaims

if TYPE_CHECKING:
    from web.account_gate import AccountGate
    from web.db import Database
    from web.health import HealthChecks
    from web.metrics import CachedRead
    from web.page_cache import PageCache
    from web.passwords import PasswordHasher
    from web.pubsub import Subscriber
    from web.realtime.hub import Hub
    from web.realtime.seats import Seats

SETTINGS = web.AppKey("settings", Settings)
DB: web.AppKey[Database] = web.AppKey("db")
REDIS = web.AppKey("redis", aredis.Redis)
HEALTH: web.AppKey[HealthChecks] = web.AppKey("health")
STARTED_AT = web.AppKey("started_at", float)
LIMITER = web.AppKey("limiter", Limiter)
# Members whose click limit this process saw spent, and until when (common/services/clicks.py).
CLICK_LIMITS = web.AppKey("click_limits", SpentWindows)
PASSWORDS: web.AppKey[PasswordHasher] = web.AppKey("passwords")
# The process's one Redis pub/sub connection (web.pubsub), and the two that follow it.
SUBSCRIBER: web.AppKey[Subscriber] = web.AppKey("subscriber")
# ``await gate(app, claims)`` is true when the account is blocked (web.auth.authenticate).
ACCOUNT_GATE: web.AppKey[AccountGate] = web.AppKey("account_gate")
HUB: web.AppKey[Hub] = web.AppKey("ws_hub")
# The per-user socket cap across instances (web.realtime.seats).
SEATS: web.AppKey[Seats] = web.AppKey("ws_seats")
# The metrics figures that cost a broker or database round per read, by source.
CACHED: web.AppKey[dict[str, CachedRead]] = web.AppKey("metrics_cached")
# The offer catalogue's pages, kept OFFERS_CACHE_SECONDS (web.page_cache).
OFFER_PAGES: web.AppKey[PageCache] = web.AppKey("offer_pages")

# Per request (request[...]): set by the middlewares and the auth decorators.
TRACE_ID = web.RequestKey("trace_id", str)
CLIENT_IP = web.RequestKey("client_ip", str)
CURRENT_USER = web.RequestKey("user", AccessClaims)


def uptime(app: web.Application) -> float:
    return round(time.monotonic() - app[STARTED_AT], 3)
