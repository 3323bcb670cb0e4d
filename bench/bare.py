"""Bare baselines, run as a server subprocess beside the real app in the same benchmark:

- ``json``: an aiohttp handler that answers a small JSON body (the ceiling of the stack);
- ``sql``: an aiohttp handler that runs one SQL statement (``--sql``, with ``$id`` taken from the
  URL's ``id`` query parameter) on a raw psycopg ``AsyncConnectionPool`` and answers its rows;
- ``postback``: a credit postback's two statements (``HOT_LOOKUP`` then ``HOT_CREDIT``) on such a
  pool, without the app's checks (no signature, no rate limit, no middlewares);
- ``postback-checked``: the same with the two duties every postback has beyond its statements,
  done the plain way: the signature checked (HMAC-SHA256, ``generic_signature``) and both rate
  limits counted by the limiter's script in a Redis call of the request's own (redis-py, as the
  app); still no middleware, envelope, parameter bounds or log fields;
- ``click``: a click's one statement (``CLICK``: the member's rate limit counted, the offer's
  state and the conditional insert) on such a pool, with a fresh random id, answering the row; no
  token check or middlewares;
- ``click-insert``: the same without the rate limit in the statement (the click's statement as
  it was while the limit lived in Redis), to show what the limit costs the database.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson
import uvloop
from aiohttp import web
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

# The statements come from this checkout's ``common`` (the script's own folder is bench/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def json_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"status": "ok"}), content_type="application/json")

    app = web.Application()
    app.router.add_get("/health", handler)
    app.router.add_get("/bare", handler)
    return app


def _pool_app(pool_size: int, path: str, make_handler, method: str = "GET") -> web.Application:  # type: ignore[no-untyped-def]
    """An app with a raw psycopg pool (opened and closed with it), ``/health`` and one route."""
    url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
    pool = AsyncConnectionPool(url, min_size=2, max_size=pool_size, open=False,
                               kwargs={"autocommit": True, "row_factory": dict_row,
                                       "prepare_threshold": 1})

    async def lifespan(app: web.Application):  # type: ignore[no-untyped-def]
        await pool.open()
        yield
        await pool.close()

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="{}", content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(lifespan)
    app.router.add_get("/health", health)
    app.router.add_route(method, path, make_handler(pool))
    return app


def _rows(data: object) -> web.Response:
    return web.Response(body=orjson.dumps({"success": True, "data": data}, default=str),
                        content_type="application/json")


def sql_app(sql: str, pool_size: int) -> web.Application:
    def make_handler(pool: AsyncConnectionPool):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            async with pool.connection() as conn:
                return _rows(await (await conn.execute(sql, dict(request.query))).fetchall())

        return handler

    return _pool_app(pool_size, "/bare", make_handler)


def postback_app(pool_size: int, *, checked: bool = False) -> web.Application:
    import hmac
    import time
    from decimal import Decimal

    import redis.asyncio as aioredis
    from psycopg.types.json import Jsonb

    from common.config import get_settings
    from common.postbacks import generic_signature
    from common.ratelimit import _HIT
    from common.services.postbacks import HOT_CREDIT, HOT_LOOKUP
    from common.services.risk_signals import credit_risk_params

    settings = get_settings()
    risk = credit_risk_params(settings)
    secret = settings.networks["bench"].secret if checked else ""
    limiter = aioredis.from_url(settings.redis_url).register_script(_HIT)  # connects on first use
    window = ["ratelimit:bare:postback:ip:127.0.0.1", "ratelimit:bare:postback:bench:127.0.0.1"]

    async def check(q: Mapping[str, str]) -> web.Response | None:
        """The signature, then both limits in one call (each 10,000,000 a minute)."""
        if not hmac.compare_digest(generic_signature(secret, q), q.get("sig", "")):
            return web.Response(status=403)
        args = [2, time.time(), 10_000_000, 60, 10_000_000, 60]
        if await limiter(keys=window, args=args) != [0]:
            return web.Response(status=429)
        return None

    def make_handler(pool: AsyncConnectionPool):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            q = request.query
            if checked and (refused := await check(q)) is not None:
                return refused
            async with pool.connection() as conn:
                found = await (await conn.execute(HOT_LOOKUP.sql, {
                    "network": "bench", "external_id": q["txn_id"], "offer": q["offer_id"],
                    "user_id": int(q["user_id"]), "click_id": None, "click_days": 90,
                })).fetchone()
            assert found is not None
            async with pool.connection() as conn:
                row = await (await conn.execute(HOT_CREDIT.sql, {
                    "network": "bench", "method": "GET", "params": Jsonb(dict(q)),
                    "ip": "127.0.0.1", "trace_id": None, "user_id": int(q["user_id"]),
                    "offer_id": found["offer_id"], "external_id": q["txn_id"],
                    "sale_amount": Decimal(q["amount"]), "commission": Decimal("1.40"),
                    "hold": 3600, "click_id": None, **risk,
                })).fetchone()
            return _rows(row)

        return handler

    return _pool_app(pool_size, "/api/postbacks/bench", make_handler)


def click_app(pool_size: int, *, limited: bool = True) -> web.Application:
    import datetime as dt
    import secrets

    from sqlalchemy import text

    from common.config import get_settings
    from common.services.clicks import CLICK, click_limit_params
    from common.services.risk_signals import CLICK_RISK_CTE, click_risk_params
    from common.sql import compile_query

    settings = get_settings()
    # Without the limit: the offer's state and the conditional insert alone.
    insert_alone = text("""
        WITH offer AS (
            SELECT id, status, tracking_url FROM offers WHERE id = :offer_id
        ), click AS (
            INSERT INTO clicks (public_id, user_id, offer_id, ip, user_agent)
            SELECT :public_id, :user_id, offer.id, :ip, :user_agent FROM offer
            WHERE offer.status = 'active' AND offer.tracking_url IS NOT NULL
            RETURNING public_id, created_at
        )""" + CLICK_RISK_CTE + """
        SELECT offer.status, offer.tracking_url, click.public_id, click.created_at
        FROM offer LEFT JOIN click ON true
    """)
    sql = compile_query(CLICK if limited else insert_alone).sql

    def make_handler(pool: AsyncConnectionPool):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            q = request.query
            limit = click_limit_params(settings.rate_limit_click, dt.datetime.now(dt.UTC)) if limited else {}
            async with pool.connection() as conn:
                row = await (await conn.execute(sql, {
                    "offer_id": int(q["offer_id"]), "public_id": secrets.token_urlsafe(16),
                    "user_id": int(q["user_id"]), "ip": "127.0.0.1", "user_agent": "bench",
                    **limit, **click_risk_params(settings, "127.0.0.1"),
                })).fetchone()
            if limited and row and not row["counted"]:  # refused, as the app would: an error
                return web.Response(status=429)
            return _rows(row)

        return handler

    return _pool_app(pool_size, "/bare", make_handler, method="POST")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="json", choices=[
        "json", "sql", "postback", "postback-checked", "click", "click-insert"])
    parser.add_argument("--sql", default="SELECT 1 AS one")
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    apps = {"json": json_app, "sql": lambda: sql_app(args.sql, args.pool),
            "postback": lambda: postback_app(args.pool),
            "postback-checked": lambda: postback_app(args.pool, checked=True),
            "click": lambda: click_app(args.pool),
            "click-insert": lambda: click_app(args.pool, limited=False)}
    app = apps[args.mode]()
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
