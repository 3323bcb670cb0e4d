"""The click's rate limit (``RATE_LIMIT_CLICK`` per member, docs/money.md "Clicks"): counted by
the click's own statement in the member's ``click_windows`` row. A moving window, as every limit
of ours; every attempt counts, a refused one stores nothing; exact under concurrent clicks through
several web instances."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

from freezegun import freeze_time
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import Click, ClickWindow
from common.security.tokens import issue_access_token
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import make_client, money_settings  # noqa: F401
from tests.fixtures.money_factories import TRACKING_URL, make_offer


def _clicks(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Click)) or 0


async def _click(client: Any, headers: dict[str, str], offer_id: int) -> tuple[int, Any]:
    resp = await client.post(f"/api/offers/{offer_id}/click", headers=headers)
    return resp.status, resp


async def test_the_window_moves_stamp_by_stamp(make_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_click="2/minute")
    user = make_user(session)
    offer_id = make_offer(session, tracking_url=TRACKING_URL)
    session.commit()
    headers = auth_headers(money_settings, user)
    start = dt.datetime.now(dt.UTC)
    with freeze_time(start, real_asyncio=True) as frozen:
        assert (await _click(client, headers, offer_id))[0] == 201  # stamps t0
        frozen.tick(10)
        assert (await _click(client, headers, offer_id))[0] == 201  # stamps t0+10
        frozen.tick(20)
        status, refused = await _click(client, headers, offer_id)  # t0+30: t0 still inside
        body = await refused.json()
        assert (status, body["code"]) == (429, "rate_limited")
        assert refused.headers["Retry-After"] == "30"  # when t0 leaves the window
        assert refused.headers["RateLimit-Limit"] == "2"
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert _clicks(session) == 2  # a refused click stores nothing
        frozen.move_to(start + dt.timedelta(seconds=60))  # t0 exactly a window old: still inside
        assert (await _click(client, headers, offer_id))[0] == 429
        frozen.move_to(start + dt.timedelta(seconds=60, milliseconds=1))  # t0 out, t0+10 in
        assert (await _click(client, headers, offer_id))[0] == 201
        status, refused = await _click(client, headers, offer_id)
        assert status == 429 and refused.headers["Retry-After"] == "10"  # t0+10 leaves at t0+70
        frozen.move_to(start + dt.timedelta(seconds=121))  # both stamps out: a whole window again
        assert [(await _click(client, headers, offer_id))[0] for _ in range(3)] == [201, 201, 429]
    assert _clicks(session) == 5
    window = session.get(ClickWindow, user.id)
    assert window is not None and len(window.stamps) == 2  # never more stamps than the limit


async def test_every_attempt_counts_whatever_the_offer(make_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_click="3/minute")
    user = make_user(session)
    live = make_offer(session, tracking_url=TRACKING_URL)
    untracked = make_offer(session, external_id="o2", tracking_url=None)
    session.commit()
    headers = auth_headers(money_settings, user)
    assert (await _click(client, headers, live + 1000))[0] == 404  # no such offer: counted
    assert (await _click(client, headers, untracked))[0] == 409  # not trackable: counted
    assert (await _click(client, headers, live))[0] == 201
    assert (await _click(client, headers, live))[0] == 429  # the fourth attempt in the window
    assert (await _click(client, headers, live + 1000))[0] == 429  # spent before any offer check
    assert _clicks(session) == 1


async def test_a_limit_made_smaller_applies_at_once(make_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, tracking_url=TRACKING_URL)
    session.commit()
    headers = auth_headers(money_settings, user)
    roomy = await make_client(rate_limit_click="5/minute")
    assert [(await _click(roomy, headers, offer_id))[0] for _ in range(3)] == [201] * 3
    tight = await make_client(rate_limit_click="2/minute")
    assert (await _click(tight, headers, offer_id))[0] == 429  # 3 stamps inside, 2 allowed
    assert (await _click(roomy, headers, offer_id))[0] == 201  # 4th of 5 under the old limit
    assert _clicks(session) == 4


async def test_concurrent_clicks_through_two_instances_never_pass_the_limit_together(aiohttp_client, money_settings: Settings, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    """40 clicks of one member at once, half through each of two web processes' apps (each with
    its own pool): exactly the limit's 5 are stored, and the row keeps 5 stamps. A limit that
    counted from the statement's snapshot would let several concurrent clicks in together."""
    from web.app import create_app

    settings = money_settings.model_copy(update={"rate_limit_click": "5/minute",
                                                 "web_db_pool_timeout": 10.0})
    user_id, offer_id = _member_and_offer(committed)
    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))
    headers = _bearer(settings, user_id)
    statuses = await asyncio.gather(*(
        _click(one if n % 2 else two, headers, offer_id) for n in range(40)))
    assert Counter(status for status, _ in statuses) == {201: 5, 429: 35}
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clicks")).scalar_one() == 5
        stamps = conn.execute(text("SELECT cardinality(stamps) FROM click_windows")).scalar_one()
        assert stamps == 5



async def test_a_member_refused_keeps_being_refused_without_a_statement(make_client, bound_db, session: Session, money_settings: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Once the statement refused a member, this process refuses their next clicks itself until
    the window's oldest stamp leaves it (nothing can free the window sooner), with the same
    Retry-After; a flood of refused clicks costs the database nothing."""
    client = await make_client(rate_limit_click="1/minute")
    user = make_user(session)
    offer_id = make_offer(session, tracking_url=TRACKING_URL)
    session.commit()
    headers = auth_headers(money_settings, user)
    statements: list[str] = []
    real = bound_db.fetch_one

    async def counted(query, params=None):  # type: ignore[no-untyped-def]
        if "click_windows" in query.sql:  # not the account gate's reads
            statements.append(query.sql)
        return await real(query, params)

    monkeypatch.setattr(bound_db, "fetch_one", counted)
    start = dt.datetime.now(dt.UTC)
    with freeze_time(start, real_asyncio=True) as frozen:
        assert (await _click(client, headers, offer_id))[0] == 201
        frozen.tick(20)
        status, first = await _click(client, headers, offer_id)
        assert status == 429 and first.headers["Retry-After"] == "40"
        asked = len(statements)  # the click's statement, then the refusal's read of the stamp
        assert asked == 3  # the first click's, then those two
        frozen.tick(10)
        for _ in range(5):
            status, again = await _click(client, headers, offer_id)
            assert status == 429 and again.headers["Retry-After"] == "30"
            assert again.headers["RateLimit-Limit"] == "1"
        assert len(statements) == asked  # refused in process
        frozen.move_to(start + dt.timedelta(seconds=60))  # the stamp is exactly a window old
        assert (await _click(client, headers, offer_id))[0] == 429
        assert len(statements) == asked
        frozen.move_to(start + dt.timedelta(seconds=60, milliseconds=1))
        assert (await _click(client, headers, offer_id))[0] == 201
        assert len(statements) == asked + 1
    assert _clicks(session) == 2


async def test_one_members_burst_asks_the_database_one_click_at_a_time(aiohttp_client, money_settings: Settings, committed: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """40 clicks of one member at once through one process: their statements run one after
    another (one pool connection, not one each queued on the member's row), the limit's 5 pass,
    and once the first refusal is known the rest are refused without a statement."""
    from web.app import create_app
    from web.keys import DB

    settings = money_settings.model_copy(update={"rate_limit_click": "5/minute"})
    user_id, offer_id = _member_and_offer(committed)
    app = create_app(settings)
    client = await aiohttp_client(app)
    in_flight, most, statements = 0, 0, 0
    real = app[DB].fetch_one

    async def watched(query, params=None):  # type: ignore[no-untyped-def]
        nonlocal in_flight, most, statements
        if "click_windows" not in query.sql:
            return await real(query, params)
        in_flight, statements = in_flight + 1, statements + 1
        most = max(most, in_flight)
        try:
            return await real(query, params)
        finally:
            in_flight -= 1

    monkeypatch.setattr(app[DB], "fetch_one", watched)
    headers = _bearer(settings, user_id)
    statuses = await asyncio.gather(*(_click(client, headers, offer_id) for _ in range(40)))
    assert Counter(status for status, _ in statuses) == {201: 5, 429: 35}
    assert most == 1
    assert statements == 7  # five clicks, one refused statement and its read of the stamp


async def test_a_token_whose_member_is_gone_is_a_401(aiohttp_client, money_settings: Settings, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    from web.app import create_app

    user_id, offer_id = _member_and_offer(committed)
    with committed.begin() as conn:  # no path of ours deletes a member: a restore, by hand
        conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user_id})
    client = await aiohttp_client(create_app(money_settings))
    for target in (offer_id, offer_id + 1000):
        status, resp = await _click(client, _bearer(money_settings, user_id), target)
        assert status == 401 and (await resp.json())["code"] == "unauthorized"
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM click_windows")).scalar_one() == 0


def test_a_stamp_from_a_clock_ahead_never_shuts_a_member_out_longer_than_a_window() -> None:
    from common.ratelimit import SpentWindows, limit_item

    spent, item = SpentWindows(), limit_item("2/minute")
    spent.remember(7, oldest=1_000_000.0 + 3600, item=item, now=1_000_000.0)
    refused = spent.refusal(item, 7, 1_000_000.0 + 30)
    assert refused is not None and refused.retry_after == 30
    assert spent.refusal(item, 7, 1_000_000.0 + 60.001) is None


def _member_and_offer(engine: Engine) -> tuple[int, int]:
    with engine.begin() as conn:
        user_id = conn.execute(text(
            "INSERT INTO users (email, password_hash, name) VALUES ('c@example.com', 'x', 'C') "
            "RETURNING id")).scalar_one()
        offer_id = conn.execute(text(
            "INSERT INTO offers (title, category, network, external_id, status, network_payout, "
            "payout, tracking_url) VALUES ('T', 'games', 'testnet', 'o1', 'active', 10, 7, :url) "
            "RETURNING id"), {"url": TRACKING_URL}).scalar_one()
    return int(user_id), int(offer_id)


def _bearer(settings: Settings, user_id: int) -> dict[str, str]:
    token = issue_access_token(settings, user_id=user_id, email="c@example.com", role="user")
    return {"Authorization": f"Bearer {token}"}
