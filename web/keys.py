"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import redis.asyncio as aredis
from aiohttp import web

from common.config import Settings
from common.ratelimit import Limiter
from common.security.tokens import AccessClaims

if TYPE_CHECKING:
    from web.db import Database
    from web.health import HealthChecks
    from web.passwords import PasswordHasher

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", "Database")
REDIS = web.AppKey("redis", aredis.Redis)
HEALTH = web.AppKey("health", "HealthChecks")
STARTED_AT = web.AppKey("started_at", float)
LIMITER = web.AppKey("limiter", Limiter)
PASSWORDS = web.AppKey("passwords", "PasswordHasher")

# Per request (request[...]): set by the middlewares and the auth decorators.
TRACE_ID = web.RequestKey("trace_id", str)
CLIENT_IP = web.RequestKey("client_ip", str)
CURRENT_USER = web.RequestKey("user", AccessClaims)


def uptime(app: web.Application) -> float:
    return round(time.monotonic() - app[STARTED_AT], 3)
