"""``GET /leaderboard`` (docs/api.md "Operations"): the current bucket's top entries from Redis, names
and avatars from PostgreSQL by primary key, and the caller's own rank."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from common.models import User
from common.services.leaderboard import board_key, bucket, member, user_of
from common.sql import compile_query
from web.auth import current_user, require_user
from web.envelope import ok
from web.keys import DB, REDIS, SETTINGS
from web.openapi import describe
from web.schemas import Model
from web.validation import parse_query

_u = User.__table__
_NAMES = compile_query(select(_u.c.id, _u.c.name, _u.c.avatar)
                       .where(_u.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))))


class LeaderboardQuery(Model):
    period: Literal["daily", "weekly", "monthly", "all_time"] = "weekly"
    limit: int = Field(10, ge=1, le=100)


class EntryOut(BaseModel):
    rank: int
    userId: int
    name: str
    avatar: str | None
    score: Decimal


class MeOut(BaseModel):
    rank: int | None = Field(description="null while the caller has no score in this period")
    score: Decimal


class LeaderboardOut(BaseModel):
    period: Literal["daily", "weekly", "monthly", "all_time"]
    generatedAt: dt.datetime
    entries: list[EntryOut]
    me: MeOut


@describe("The leaderboard of the current period; equal scores rank by earlier signup",
          tags=["leaderboard"], query=LeaderboardQuery, response=LeaderboardOut)
@require_user
async def leaderboard(request: web.Request) -> web.Response:
    q = parse_query(request, LeaderboardQuery)
    now = dt.datetime.now(dt.UTC)
    board = board_key(request.app[SETTINGS], q.period, bucket(q.period, now))
    me = member(current_user(request).user_id)
    pipe = request.app[REDIS].pipeline(transaction=False)
    pipe.zrevrange(board, 0, q.limit - 1, withscores=True)
    pipe.zrevrank(board, me)
    pipe.zscore(board, me)
    top, my_rank, my_score = await pipe.execute()
    ids = [user_of(m) for m, _ in top]
    people = {r["id"]: r for r in await request.app[DB].fetch_all(_NAMES, {"ids": ids})} if ids else {}
    entries = [
        {"rank": i + 1, "userId": uid, "name": people[uid]["name"] if uid in people else "",
         "avatar": people[uid]["avatar"] if uid in people else None,
         "score": Decimal(int(score)) / 100}
        for i, (uid, (_, score)) in enumerate(zip(ids, top, strict=True))
    ]
    return ok({
        "period": q.period, "generatedAt": now, "entries": entries,
        "me": {"rank": None if my_rank is None else my_rank + 1,
               "score": Decimal(int(my_score or 0)) / 100},
    })


ROUTES = [("GET", "/leaderboard", leaderboard)]
