"""Risk signals on the web's hot paths (docs/risk.md "What the hot paths pay"): a click from a
listed address and a credit seconds after its click are recorded by the paths' own statements,
with the app's settings, once per fact; with RISK_ENABLED=false by neither."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import RiskSignal, User
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import money_settings  # noqa: F401
from tests.fixtures.money_factories import TRACKING_URL, generic_params, make_offer


async def _app(aiohttp_client, money_settings: Settings, bound_db, **risk: Any):  # type: ignore[no-untyped-def]
    from web.app import create_app

    return await aiohttp_client(create_app(money_settings.model_copy(update=risk), db=bound_db))


def _signals(session: Session) -> list[tuple[int, str, dict[str, Any]]]:
    session.expire_all()
    rows = session.execute(select(RiskSignal.user_id, RiskSignal.kind, RiskSignal.detail)
                           .order_by(RiskSignal.id))
    return [(r.user_id, r.kind, r.detail) for r in rows]


async def _click_and_credit(client, settings: Settings, session: Session, user: User) -> None:  # type: ignore[no-untyped-def]
    offer_id = make_offer(session, tracking_url=TRACKING_URL, network="testnet", external_id="o1")
    session.commit()
    url = f"/api/offers/{offer_id}/click"
    first = await client.post(url, headers=auth_headers(settings, user))
    assert first.status == 201
    assert (await client.post(url, headers=auth_headers(settings, user))).status == 201
    click_id = (await first.json())["data"]["clickId"]
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", click_id=click_id)
    for _ in range(2):  # the network's retry records nothing more
        assert (await client.get("/api/postbacks/testnet", params=params)).status == 200


async def test_a_listed_click_and_a_fast_credit_are_signals(aiohttp_client, money_settings: Settings, bound_db, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = await _app(aiohttp_client, money_settings, bound_db,
                        risk_blocked_cidrs="127.0.0.0/8, ::1/128")
    user = make_user(session)
    await _click_and_credit(client, money_settings, session, user)
    found = _signals(session)
    assert [(who, kind) for who, kind, _ in found] == [
        (user.id, "listed_ip"), (user.id, "fast_conversion")]
    assert found[0][2]["seenAt"] == "click" and found[0][2]["network"] in ("127.0.0.0/8", "::1/128")
    assert session.get(User, user.id).risk_score == 60  # type: ignore[union-attr]


async def test_risk_off_records_nothing_on_the_hot_paths(aiohttp_client, money_settings: Settings, bound_db, session: Session) -> None:  # type: ignore[no-untyped-def]
    client = await _app(aiohttp_client, money_settings, bound_db, risk_enabled=False,
                        risk_blocked_cidrs="127.0.0.0/8, ::1/128")
    user = make_user(session)
    await _click_and_credit(client, money_settings, session, user)
    assert _signals(session) == []


async def test_a_listed_click_keys_the_address_as_sign_in_does(aiohttp_client, money_settings: Settings, bound_db, session: Session) -> None:  # type: ignore[no-untyped-def]
    # Behind our proxy the click's address is an IPv4-mapped one (a dual-stack listener's view);
    # the sign-in saw the same client as plain IPv4: one fact, one signal, one weight.
    from common.services.auth import sign_in

    client = await _app(aiohttp_client, money_settings, bound_db,
                        risk_blocked_cidrs="203.0.113.0/24", trusted_proxies=("127.0.0.1", "::1"))
    user = make_user(session)
    sign_in(session, user_id=user.id, refresh_ttl=3600, ip="203.0.113.5", trace_id=None)
    offer_id = make_offer(session, tracking_url=TRACKING_URL, network="testnet", external_id="o1")
    session.commit()
    clicked = await client.post(f"/api/offers/{offer_id}/click",
                                headers={**auth_headers(money_settings, user),
                                         "X-Forwarded-For": "::ffff:203.0.113.5"})
    assert clicked.status == 201
    found = _signals(session)
    assert [(who, kind, detail["ip"]) for who, kind, detail in found] == [
        (user.id, "listed_ip", "203.0.113.5")]
    assert session.get(User, user.id).risk_score == 50  # type: ignore[union-attr]
