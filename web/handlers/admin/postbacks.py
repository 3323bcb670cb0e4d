"""Admin: the postback log for support (search, newest first) and the replay of one callback
with today's configuration (docs/money.md "Clicks", docs/api.md "Postback log")."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field, field_validator

from common.postbacks import shown_params
from common.services.postback_log import OUTCOMES, LogSearch, search_queries
from common.services.postback_replay import replay_postback
from web.auth import require_admin
from web.envelope import ok, pagination
from web.handlers.admin.base import audit_context
from web.handlers.admin.schemas import PostbackLogOut, PostbackReplayOut
from web.ids import MAX_ID, IdPath, path_id
from web.keys import DB, SETTINGS
from web.openapi import describe
from web.paging import fetch_page
from web.schemas import PageQuery
from web.validation import parse_query


class PostbackLogQuery(PageQuery):
    network: str | None = Field(None, min_length=1, max_length=64)
    outcome: str | None = Field(None, json_schema_extra={"enum": list(OUTCOMES)},
                                description="an accepted callback's outcome, or the verdict "
                                "that refused it (bad_signature, ip_refused, invalid)")
    txnId: str | None = Field(None, min_length=1, max_length=128)
    userId: int | None = Field(None, ge=1, le=MAX_ID)
    from_: dt.datetime | None = Field(None, alias="from", description="inclusive; an RFC 3339 "
                                      "date-time, or a date (its midnight, UTC)")
    to: dt.datetime | None = Field(None, description="exclusive; as `from`")

    @field_validator("outcome")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in OUTCOMES:
            raise ValueError(f"one of {', '.join(OUTCOMES)}")
        return value

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        # A window ending before it starts is valid and matches nothing (no schema could refuse
        # it, so the server does not either).
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    def search(self) -> LogSearch:
        return LogSearch(network=self.network.lower() if self.network else None,
                         outcome=self.outcome, txn_id=self.txnId, user_id=self.userId,
                         since=self.from_, until=self.to)


@describe("The postback log, newest first (filters network, outcome, txnId, userId, from, to); "
          "signatures redacted", tags=["admin"], query=PostbackLogQuery, response=PostbackLogOut,
          list=True)
@require_admin
async def postback_log(request: web.Request) -> web.Response:
    q = parse_query(request, PostbackLogQuery)
    search = q.search()
    rows_query, count_query = search_queries(search.shape())
    rows, total = await fetch_page(request.app[DB], rows_query, count_query,
                                   {**search.params(), "limit": q.limit, "offset": q.offset},
                                   page=q.page)
    return ok([PostbackLogOut.of(r, params=shown_params(r["params"])) for r in rows], page=pagination(q.page, q.limit, total))


@describe("Replay a logged callback: checked again with today's configuration and applied as a "
          "live one would be (a repeat changes nothing); audited", tags=["admin"], path=IdPath,
          response=PostbackReplayOut,
          statuses={404: "No such log row", 409: "Its network is not configured any more"})
@require_admin
async def replay(request: web.Request) -> web.Response:
    log_id = path_id(request, "Postback")
    settings = request.app[SETTINGS]
    done = await request.app[DB].run(
        replay_postback, log_id=log_id, networks=settings.networks,
        hold_seconds=settings.sale_hold_seconds, audit=audit_context(request))
    return ok(PostbackReplayOut.of(done))


ROUTES = [
    ("GET", "/admin/postbacks", postback_log),
    ("POST", "/admin/postbacks/{id:\\d+}/replay", replay),
]
