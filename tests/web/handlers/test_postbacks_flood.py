"""A flood of callbacks cannot fill ``postback_log`` (docs/money.md "Postbacks"): unknown networks
store nothing, one source IP has one budget whatever network names it makes up, and what is stored
of a callback's parameters is bounded."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import PostbackLog
from common.postbacks.params import MAX_NAME, MAX_PARAMS, MAX_VALUE, TRUNCATED
from tests.fixtures.factories import make_user
from tests.fixtures.money import (  # noqa: F401
    money_client,
    money_settings,
)
from tests.fixtures.money_factories import generic_params, make_offer

_UNKNOWN = re.compile(r"^savebucks_postbacks_unknown_network_total (\S+)$", re.MULTILINE)


@pytest.fixture
def make_client(aiohttp_client, money_settings: Settings, bound_db):  # type: ignore[no-untyped-def]
    from web.app import create_app

    async def make(**overrides: Any):  # type: ignore[no-untyped-def]
        return await aiohttp_client(create_app(money_settings.model_copy(update=overrides), db=bound_db))

    return make


def _logged(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(PostbackLog)) or 0


async def _unknown_count(client: Any) -> float:
    found = _UNKNOWN.search(await (await client.get("/metrics")).text())
    assert found, "the unknown-network counter is exposed"
    return float(found.group(1))


async def test_unknown_networks_store_nothing_and_are_counted(make_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = await make_client()
    before = await _unknown_count(client)
    big = {"p": "x" * 200_000}
    for n in range(20):
        resp = await client.post(f"/api/postbacks/junk{n}", data=big)
        assert resp.status == 403 and (await resp.json())["success"] is False
    assert _logged(session) == 0
    assert await _unknown_count(client) == before + 20


async def test_one_source_has_one_budget_across_network_names(make_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_postback_ip="3/minute", rate_limit_postback="100/minute")
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    for n in range(3):
        assert (await client.get(f"/api/postbacks/junk{n}")).status == 403
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1")
    resp = await client.get("/api/postbacks/testnet", params=params)
    assert resp.status == 429 and "Retry-After" in resp.headers
    assert _logged(session) == 0


async def test_stored_parameters_are_bounded(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    params = {f"p{n:03d}": str(n) for n in range(MAX_PARAMS + 30)}
    params["p000"] = "v" * 200_000
    params["n" * 5000] = "long name"
    resp = await money_client.post("/api/postbacks/testnet", data=params)
    assert resp.status == 403  # unsigned: a bad signature, logged
    stored = session.query(PostbackLog).one().params
    assert len(stored) <= MAX_PARAMS
    assert all(len(k) <= MAX_NAME and len(v) <= MAX_VALUE for k, v in stored.items())
    assert stored["p000"].endswith(TRUNCATED) and stored["p000"].startswith("vvv")
    assert len(str(stored)) < MAX_PARAMS * (MAX_NAME + MAX_VALUE + 8)


async def test_nul_and_unpaired_surrogates_are_stored_readably(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    resp = await money_client.get("/api/postbacks/testnet?a=x%00y&b=%ED%A0%80&sig=z")
    assert resp.status == 403
    stored = session.query(PostbackLog).one().params
    assert "\x00" not in stored["a"] and stored["a"].startswith("x")
