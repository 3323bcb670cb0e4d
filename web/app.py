"""The application factory: ``create_app(settings)`` wires resources, middlewares and routes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from common.config import Settings
from common.db import make_sync_engine
from common.ratelimit import Limiter, SpentWindows
from common.redis import events_channel, make_async_redis, make_redis
from web.account_gate import account_gate_context
from web.broker import make_broker
from web.console import setup_console
from web.db import Database, PooledDatabase
from web.docs import setup_docs
from web.health import HealthChecks
from web.keys import CLICK_LIMITS, DB, HEALTH, LIMITER, OFFER_PAGES, REDIS, SETTINGS, STARTED_AT
from web.middlewares import MIDDLEWARES, check_held_routes
from web.page_cache import PageCache
from web.passwords import passwords_context
from web.pubsub import running_subscriber, subscriber_context
from web.realtime import setup_realtime
from web.routes import setup_routes


def create_app(settings: Settings, *, db: Database | None = None) -> web.Application:
    """Build the app. Tests pass ``db`` (a ``BoundDatabase`` inside their transaction)."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[STARTED_AT] = time.monotonic()
    app[OFFER_PAGES] = PageCache(settings.offers_cache_seconds)
    app[CLICK_LIMITS] = SpentWindows()
    app.cleanup_ctx.append(_redis)
    # The one pub/sub connection: made before the account gate and the hub follow it, started
    # after them (last), and so stopped before them.
    app.cleanup_ctx.append(subscriber_context)
    app.cleanup_ctx.append(_database(db))
    app.cleanup_ctx.append(_health)
    app.cleanup_ctx.append(_limiter)
    app.cleanup_ctx.append(passwords_context)
    app.cleanup_ctx.append(account_gate_context)
    setup_routes(app)
    setup_realtime(app)
    setup_docs(app)
    setup_console(app)
    check_held_routes(app)
    app.cleanup_ctx.append(running_subscriber)
    return app


async def _limiter(app: web.Application) -> AsyncIterator[None]:
    app[LIMITER] = Limiter.from_settings(app[SETTINGS])
    yield
    await app[LIMITER].close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    app[REDIS] = make_async_redis(app[SETTINGS])
    yield
    await app[REDIS].aclose()


def _database(
    given: Database | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if given is not None:
            app[DB] = given
            yield
            return
        client = make_redis(settings)  # the write threads' after-commit effects (sync)
        engine = make_sync_engine(settings, pool_timeout=settings.web_db_pool_timeout)
        db = PooledDatabase(settings, engine, client, events_channel(settings))
        await db.open()
        app[DB] = db
        yield
        await db.close()
        client.close()

    return ctx


async def _health(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[HEALTH] = HealthChecks(make_broker(settings, app[REDIS]), settings.health_cache_seconds)
    yield
    await app[HEALTH].close()
