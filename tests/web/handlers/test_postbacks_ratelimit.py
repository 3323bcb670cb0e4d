"""Rate limits on the money routes: postbacks per network and source IP, withdrawals per user.
Over the limit: 429 with Retry-After and the RateLimit headers, and nothing stored."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import IdempotencyKey, Payment, PostbackLog, Sale, User
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import make_client, money_settings  # noqa: F401
from tests.fixtures.money_factories import generic_params, make_funded_user, make_offer
from web.keys import LIMITER

BODY = {"amount": 10, "method": "paypal", "destination": "me@example.com"}


def _count(session: Session, model: type) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def _assert_limited(resp: Any, body: dict[str, Any], limit: int) -> int:
    assert resp.status == 429 and body["code"] == "rate_limited", body
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert resp.headers["RateLimit-Limit"] == str(limit)
    assert resp.headers["RateLimit-Remaining"] == "0"
    return retry


async def test_postbacks_over_the_limit_store_nothing_then_pass_again(make_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_postback="3/minute")
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()

    def params(txn: str) -> dict[str, str]:
        return generic_params(user_id=user.id, offer_id="o1", txn_id=txn, amount="1.00")

    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        for n in range(3):
            assert (await client.get("/api/postbacks/testnet", params=params(f"t{n}"))).status == 200
        resp = await client.post("/api/postbacks/TESTNET", data=params("t3"))
        retry = _assert_limited(resp, await resp.json(), 3)
        assert _count(session, Sale) == 3 and _count(session, PostbackLog) == 3
        assert session.get(User, user.id).pending_balance == Decimal("2.10")  # type: ignore[union-attr]

        frozen.tick(retry + 1)
        assert (await client.get("/api/postbacks/testnet", params=params("t3"))).status == 200
        assert _count(session, Sale) == 4


async def test_postback_limit_is_per_network_and_source(make_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_postback="1/minute", trusted_proxies=("127.0.0.0/8",))
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    ok = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", amount="1.00")
    from_a, from_b = {"X-Forwarded-For": "198.51.100.1"}, {"X-Forwarded-For": "198.51.100.2"}

    assert (await client.get("/api/postbacks/testnet", params=ok, headers=from_a)).status == 200
    assert (await client.get("/api/postbacks/testnet", params=ok, headers=from_a)).status == 429
    # Another source for the same network, and another network from the same source, pass.
    assert (await client.get("/api/postbacks/testnet", params=ok, headers=from_b)).status == 200
    assert (await client.get("/api/postbacks/locked", params=ok, headers=from_a)).status == 403
    assert _count(session, Sale) == 1 and _count(session, PostbackLog) == 3


async def test_withdrawals_over_the_limit_store_nothing(make_client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_withdrawal="2/minute")
    user = make_funded_user(session, "100")
    other = make_funded_user(session, "100")
    session.commit()

    def post(who: User, key: str):  # type: ignore[no-untyped-def]
        return client.post("/api/payments", json=BODY,
                           headers={**auth_headers(settings, who), "Idempotency-Key": key})

    for key in ("k1", "k2"):
        assert (await post(user, key)).status == 202
    resp = await post(user, "k3")
    _assert_limited(resp, await resp.json(), 2)
    assert _count(session, Payment) == 2
    assert session.scalar(select(func.count()).where(IdempotencyKey.key == "k3")) == 0
    assert session.get(User, user.id).balance == Decimal("80.00")  # type: ignore[union-attr]
    # The limit is the user's own: another user still withdraws.
    assert (await post(other, "k3")).status == 202


async def test_a_postbacks_two_limits_cost_one_redis_round_trip(make_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    """Per source IP, then per network and source IP: counted together by one script call; an
    unknown network counts only the first."""
    client = await make_client(rate_limit_postback_ip="2/minute")
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    session.commit()
    limiter = client.app[LIMITER]
    script, calls = limiter._script, []

    async def counted(**kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(kwargs["keys"]))
        return await script(**kwargs)

    limiter._script = counted
    ok = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", amount="1.00")
    assert (await client.get("/api/postbacks/testnet", params=ok)).status == 200
    assert (await client.get("/api/postbacks/nobody", params=ok)).status == 403
    assert calls == [2, 1]
    # The per-IP budget took both: the next from this address is refused whatever it names.
    resp = await client.get("/api/postbacks/testnet", params=ok)
    _assert_limited(resp, await resp.json(), 2)
