"""Clicks and attribution (docs/money.md "Clicks"): a click with an unguessable id fills the offer's
tracking URL; a postback naming it must name this user's click for this offer, not past
retention, or nothing is credited; the sale keeps it; old clicks are purged."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import Click, PostbackLog, Sale
from common.services.clicks import is_click_id, purge_expired_clicks, tracking_link
from common.services.sales import ClickMismatch, credit_sale
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import make_client, money_client, money_settings  # noqa: F401
from tests.fixtures.money_factories import TRACKING_URL, generic_params, make_click, make_offer
from tests.fixtures.schemes import md5


async def _click(client, settings: Settings, user, offer_id: int):  # type: ignore[no-untyped-def]
    return await client.post(f"/api/offers/{offer_id}/click", headers={
        **auth_headers(settings, user), "User-Agent": "Mozilla/5.0 (test)"})


async def test_a_click_fills_the_tracking_url(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, tracking_url=TRACKING_URL)
    session.commit()
    first = await _click(money_client, money_settings, user, offer_id)
    body = await first.json()
    assert first.status == 201, body
    click_id = body["data"]["clickId"]
    assert is_click_id(click_id) and len(click_id) == 22
    assert body["data"]["url"] == (
        f"https://track.example.com/go?sub={urllib.parse.quote(click_id, safe='')}&u={user.id}")
    assert body["data"]["createdAt"].endswith("Z")
    stored = session.query(Click).one()
    assert (stored.public_id, stored.user_id, stored.offer_id) == (click_id, user.id, offer_id)
    assert stored.ip == "127.0.0.1" and stored.user_agent == "Mozilla/5.0 (test)"
    second = await (await _click(money_client, money_settings, user, offer_id)).json()
    assert second["data"]["clickId"] != click_id  # random, never a sequence


async def test_macros_are_url_encoded(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, tracking_url="https://t.example/{userId}/x?c={clickId}")
    session.commit()
    body = await (await _click(money_client, money_settings, user, offer_id)).json()
    click_id = body["data"]["clickId"]
    assert body["data"]["url"] == f"https://t.example/{user.id}/x?c={click_id}"


@pytest.mark.parametrize(("status", "url", "expected", "code"), [
    ("paused", TRACKING_URL, 404, "not_found"),
    ("pending", TRACKING_URL, 404, "not_found"),
    ("active", None, 409, "offer_not_trackable"),
])
async def test_clicks_only_on_active_offers_with_a_tracking_url(money_client, session: Session, money_settings: Settings, status, url, expected, code) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, status=status, tracking_url=url)
    session.commit()
    resp = await _click(money_client, money_settings, user, offer_id)
    body = await resp.json()
    assert (resp.status, body["code"]) == (expected, code)
    unknown = await _click(money_client, money_settings, user, offer_id + 1000)
    assert unknown.status == 404
    assert (await money_client.post(f"/api/offers/{offer_id}/click")).status == 401
    assert session.query(Click).count() == 0


async def test_clicks_are_rate_limited_per_user(make_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(rate_limit_click="3/minute")
    user, other = make_user(session), make_user(session)
    offer_id = make_offer(session, tracking_url=TRACKING_URL)
    session.commit()
    statuses = [(await _click(client, money_settings, user, offer_id)).status for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    refused = await _click(client, money_settings, user, offer_id)
    assert refused.headers["Retry-After"]
    assert (await _click(client, money_settings, other, offer_id)).status == 201  # per user
    assert session.query(Click).count() == 4


async def test_admin_tracking_url_is_validated_and_kept_from_the_public(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(session, role="admin")
    session.commit()
    headers = auth_headers(money_settings, admin)
    base = {"title": "T", "category": "games", "network": "testnet", "externalId": "x1"}
    for bad in ("http://t.example/?c={clickId}", "https://t.example/?c=1",
                "https://t.example/?c={clickid}", "https://t.example/?c={clickId}&{other}",
                "https:///?c={clickId}", "https://t.example/ c={clickId}", "javascript:{clickId}"):
        resp = await money_client.post("/api/admin/offers", json={**base, "trackingUrl": bad},
                                       headers=headers)
        body = await resp.json()
        assert resp.status == 422, (bad, body)
        assert any(e.startswith("trackingUrl:") for e in body["errors"])
    created = await money_client.post("/api/admin/offers", headers=headers,
                                      json={**base, "trackingUrl": TRACKING_URL})
    offer = (await created.json())["data"]
    assert created.status == 201 and offer["trackingUrl"] == TRACKING_URL
    got = await (await money_client.get(f"/api/admin/offers/{offer['id']}", headers=headers)).json()
    assert got["data"]["trackingUrl"] == TRACKING_URL
    await money_client.post(f"/api/admin/offers/{offer['id']}/approve", headers=headers)
    public = await (await money_client.get(f"/api/offers/{offer['id']}")).json()
    assert "trackingUrl" not in public["data"]
    listed = await (await money_client.get("/api/offers")).json()
    assert all("trackingUrl" not in o for o in listed["data"])
    bad = await money_client.put(f"/api/admin/offers/{offer['id']}", headers=headers,
                                 json={"trackingUrl": "https://t.example/"})
    assert bad.status == 422
    cleared = await money_client.put(f"/api/admin/offers/{offer['id']}", headers=headers,
                                     json={"trackingUrl": ""})
    assert (await cleared.json())["data"]["trackingUrl"] is None


def _outcomes(session: Session) -> list[tuple[str, str | None]]:
    return [(r.verdict, r.outcome) for r in session.query(PostbackLog).order_by(PostbackLog.id)]


async def test_a_postback_naming_the_click_links_the_sale(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, external_id="o1", tracking_url=TRACKING_URL)
    session.commit()
    headers = auth_headers(money_settings, user)
    click_id = (await (await _click(money_client, money_settings, user, offer_id)).json())["data"]["clickId"]
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", click_id=click_id)
    resp = await money_client.get("/api/postbacks/testnet", params=params)
    assert resp.status == 200, await resp.json()
    sale = session.query(Sale).one()
    assert sale.click_id == click_id
    again = await money_client.get("/api/postbacks/testnet", params=params)
    assert (await again.json())["data"]["saleId"] == sale.id
    assert _outcomes(session) == [("accepted", "credited"), ("accepted", "duplicate")]

    sales = await (await money_client.get("/api/sales", headers=headers)).json()
    assert sales["data"][0]["clickId"] == click_id
    clicks = await (await money_client.get("/api/clicks", headers=headers)).json()
    assert clicks["data"] == [{
        "clickId": click_id, "offerId": offer_id, "offerTitle": clicks["data"][0]["offerTitle"],
        "createdAt": clicks["data"][0]["createdAt"], "saleId": sale.id, "saleStatus": "pending",
        "claimable": False}]
    assert clicks["pagination"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1}

    plain = generic_params(user_id=user.id, offer_id="o1", txn_id="t2")  # no click: still credited
    assert (await money_client.get("/api/postbacks/testnet", params=plain)).status == 200
    admin = make_user(session, role="admin")
    session.commit()
    listed = await (await money_client.get("/api/admin/sales", headers=auth_headers(money_settings, admin))).json()
    assert {s["externalId"]: s["clickId"] for s in listed["data"]} == {"t1": click_id, "t2": None}


@pytest.mark.parametrize("case", ["other_user", "other_offer", "unparseable", "unknown", "expired",
                                  "converted"])
async def test_a_mismatched_click_credits_nothing(money_client, session: Session, case: str) -> None:  # type: ignore[no-untyped-def]
    user, other = make_user(session), make_user(session)
    offer_id = make_offer(session, external_id="o1")
    other_offer = make_offer(session, external_id="o2")
    owner, offer, age = user.id, offer_id, dt.timedelta(0)
    if case == "other_user":
        owner = other.id
    elif case == "other_offer":
        offer = other_offer
    elif case == "expired":
        age = dt.timedelta(days=90, seconds=1)
    click_id, _ = make_click(session, owner, offer, age=age)
    if case == "unparseable":
        click_id = "not a click id!"
    elif case == "unknown":
        click_id = "A" * 22
    elif case == "converted":
        first = generic_params(user_id=user.id, offer_id="o1", txn_id="t0", click_id=click_id)
        assert (await money_client.get("/api/postbacks/testnet", params=first)).status == 200
    session.commit()
    before = session.query(Sale).count()
    params = generic_params(user_id=user.id, offer_id="o1", txn_id="t1", click_id=click_id)
    resp = await money_client.get("/api/postbacks/testnet", params=params)
    body = await resp.json()
    assert resp.status == 422, body
    assert session.query(Sale).count() == before
    assert _outcomes(session)[-1] == ("accepted", "click_mismatch")
    session.expire_all()
    assert session.get(type(user), user.id).pending_balance == (  # type: ignore[union-attr]
        Decimal("7.00") if case == "converted" else 0)


def test_the_sync_credit_applies_the_same_click_rule(session: Session) -> None:
    user, other = make_user(session), make_user(session)
    offer_id = make_offer(session, external_id="o1")
    theirs, _ = make_click(session, other.id, offer_id)
    mine, _ = make_click(session, user.id, offer_id)
    request = {"network": "testnet", "user_id": user.id, "offer_external_id": "o1",
               "amount": Decimal(10), "hold_seconds": 60, "click_days": 90}
    with pytest.raises(ClickMismatch):
        credit_sale(session, external_id="t1", click_id=theirs, **request)
    result = credit_sale(session, external_id="t2", click_id=mine, **request)
    assert result.outcome == "credited"
    assert session.get(Sale, result.sale_id).click_id == mine  # type: ignore[union-attr]


async def test_cpx_names_the_click_in_subid_1(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, network="cpx", external_id="*")
    click_id, _ = make_click(session, user.id, offer_id)
    session.commit()
    base = {"user_id": str(user.id), "amount_usd": "2.00", "status": "1"}
    ok = {**base, "trans_id": "c1", "secure_hash": md5("c1-cpx-secret"), "subid_1": click_id}
    assert (await money_client.get("/api/postbacks/cpx", params=ok)).status == 200
    assert session.query(Sale).one().click_id == click_id
    wrong = {**base, "trans_id": "c2", "secure_hash": md5("c2-cpx-secret"), "subid_1": "B" * 22}
    assert (await money_client.get("/api/postbacks/cpx", params=wrong)).status == 422


def test_retention_purges_old_clicks_in_batches(session: Session) -> None:
    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    old = dt.timedelta(days=91)
    fresh = make_click(session, user.id, offer_id, age=dt.timedelta(days=89))[0]
    doomed = {make_click(session, user.id, offer_id, age=old)[0] for _ in range(5)}
    sold = make_click(session, user.id, offer_id, age=old)[0]
    claimed = make_click(session, user.id, offer_id, age=old)[0]
    session.execute(text(
        "INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount, commission_amount,"
        " status, hold_until, click_id) VALUES (:u, :o, 'testnet', 'old', 1, 0, 'rejected', now(), :c)"),
        {"u": user.id, "o": offer_id, "c": sold})
    session.execute(text("INSERT INTO claims (click_id, user_id, offer_id, message) "
                         "VALUES (:c, :u, :o, 'never credited')"),
                    {"c": claimed, "u": user.id, "o": offer_id})
    # Bounded batches: a run that stops after any batch leaves whole batches done.
    assert [purge_expired_clicks(session, days=90, batch=2) for _ in range(4)] == [2, 2, 1, 0]
    left = set(session.execute(text("SELECT public_id FROM clicks")).scalars())
    assert left == {fresh, sold, claimed} and not doomed & left


@pytest.mark.committed
def test_the_beat_task_purges_clicks(committed) -> None:  # type: ignore[no-untyped-def]
    from workers.schedule import SCHEDULE
    from workers.tasks.clicks import purge_clicks

    with Session(committed) as session, session.begin():
        user = make_user(session)
        offer_id = make_offer(session, external_id="o1")
        for _ in range(3):
            make_click(session, user.id, offer_id, age=dt.timedelta(days=91))
        kept = make_click(session, user.id, offer_id)[0]
    assert SCHEDULE["sales.purge_clicks"]["task"] == "sales.purge_clicks"
    assert purge_clicks(batch=2) == 3  # two committed batches
    assert purge_clicks() == 0  # restartable: nothing left to do
    with committed.connect() as conn:
        assert conn.execute(text("SELECT public_id FROM clicks")).scalars().all() == [kept]


@pytest.mark.parametrize("url", [
    TRACKING_URL,
    "https://t.example/{userId}/x?c={clickId}&d={clickId}",
    'https://t.example/é/ünï/日本?q="quoted"&b=back\\slash&c={clickId}',
    "https://t.example/?c={clickId}&u={userId}&emoji=\U0001f600&tab=%09&amp=a&lt=<&gt=>",
])
async def test_the_201_is_byte_for_byte_what_the_envelope_writes(money_client, session: Session, money_settings: Settings, url: str) -> None:  # type: ignore[no-untyped-def]
    """The click's 201 data is written by its statement; it must be exactly what
    ``dumps(ClickCreatedOut.of(...))`` writes, the URL filled by ``tracking_link``."""
    from web.envelope import dumps
    from web.money_schemas import ClickCreatedOut

    user = make_user(session)
    offer_id = make_offer(session, tracking_url=url)
    session.commit()
    resp = await _click(money_client, money_settings, user, offer_id)
    raw = await resp.read()
    assert resp.status == 201
    head = b'{"success":true,"data":'
    assert raw.startswith(head)
    data = raw[len(head):raw.rindex(b',"timestamp":"')]
    stored = session.query(Click).one()
    expected = dumps(ClickCreatedOut.of(
        {"created_at": stored.created_at}, clickId=stored.public_id,
        url=tracking_link(url, click_id=stored.public_id, user_id=user.id)))
    assert data == expected
