"""The offer catalogue and the payout rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from freezegun import freeze_time
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update
from sqlalchemy.orm import Session

from common.config import get_settings
from common.models.offers import Offer
from common.money import commission, to_cents
from tests.fixtures.auth import make_client  # noqa: F401
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money_factories import make_offer


def test_rounding_rule_truncates_to_cents() -> None:
    assert to_cents(Decimal("1.239")) == Decimal("1.23")
    assert commission(payout_type="share", user_share=Decimal("0.7"), fixed_payout=None,
                      network_amount=Decimal("0.99")) == Decimal("0.69")
    assert commission(payout_type="fixed", user_share=Decimal("0.7"), fixed_payout=Decimal("2.5"),
                      network_amount=Decimal(100)) == Decimal("2.50")


@given(
    st.decimals(min_value=0, max_value=10**6, places=2),
    st.decimals(min_value=0, max_value=1, places=4),
)
def test_share_never_exceeds_what_the_network_pays(amount: Decimal, share: Decimal) -> None:
    paid = commission(payout_type="share", user_share=share, fixed_payout=None, network_amount=amount)
    assert paid == paid.quantize(Decimal("0.01"))
    assert 0 <= amount * share - paid < Decimal("0.01")


async def test_catalogue_lists_active_offers_with_filters(client, session: Session) -> None:  # type: ignore[no-untyped-def]
    games = [make_offer(session, category="games", title=f"Play {i}") for i in range(3)]
    make_offer(session, category="surveys", title="Survey about games")
    make_offer(session, category="games", status="paused")
    make_offer(session, category="games", status="pending")
    session.commit()

    resp = await client.get("/api/offers", params={"category": "games", "limit": 2})
    body = await resp.json()
    assert resp.status == 200
    assert [o["id"] for o in body["data"]] == games[::-1][:2]
    assert body["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
    offer = body["data"][0]
    assert set(offer) == {"id", "title", "description", "category", "network", "payout", "status",
                          "createdAt"}
    assert offer["payout"] == 7.0 and offer["status"] == "active"

    resp = await client.get("/api/offers", params={"search": "survey"})
    assert [o["title"] for o in (await resp.json())["data"]] == ["Survey about games"]
    resp = await client.get("/api/offers", params={"search": "%"})
    assert (await resp.json())["data"] == []
    resp = await client.get("/api/offers", params={"category": "games", "page": 9})
    assert (await resp.json())["pagination"]["total"] == 3

    resp = await client.get("/api/offers/categories")
    assert (await resp.json())["data"] == [{"category": "games", "count": 3},
                                           {"category": "surveys", "count": 1}]


async def test_offer_detail_hides_inactive_except_from_admins(client, session: Session, settings) -> None:  # type: ignore[no-untyped-def]
    active = make_offer(session)
    paused = make_offer(session, status="paused")
    admin = make_user(session, role="admin")
    user = make_user(session)
    session.commit()
    assert (await client.get(f"/api/offers/{active}")).status == 200
    assert (await client.get(f"/api/offers/{paused}")).status == 404
    assert (await client.get(f"/api/offers/{paused}", headers=auth_headers(settings, user))).status == 404
    resp = await client.get(f"/api/offers/{paused}", headers=auth_headers(settings, admin))
    assert resp.status == 200 and (await resp.json())["data"]["status"] == "paused"
    assert (await client.get("/api/offers/99999999999999999999")).status == 404


async def test_catalogue_pages_are_kept_under_a_second_and_revalidate_with_etags(  # type: ignore[no-untyped-def]
        make_client, session: Session) -> None:
    """A page is read once per OFFERS_CACHE_SECONDS, the same for every caller; an offer's change
    shows once that time has passed since it committed; If-None-Match answers 304 while the page
    is unchanged."""
    client = await make_client(offers_cache_seconds=0.5)
    offer = make_offer(session, category="games", title="Before")
    user = make_user(session)
    session.commit()
    params = {"category": "games"}
    with freeze_time(dt.datetime.now(dt.UTC), real_asyncio=True) as frozen:
        first = await client.get("/api/offers", params=params)
        etag = first.headers["ETag"]
        assert (await first.json())["data"][0]["title"] == "Before"
        session.execute(update(Offer).where(Offer.id == offer).values(title="After"))
        session.commit()
        # A signed-in caller gets the same public page (nothing in it is the caller's).
        signed_in = await client.get("/api/offers", params=params,
                                     headers=auth_headers(get_settings(), user))
        assert (await signed_in.json())["data"][0]["title"] == "Before"
        unchanged = await client.get("/api/offers", params=params, headers={"If-None-Match": etag})
        assert unchanged.status == 304 and unchanged.headers["ETag"] == etag
        assert await unchanged.read() == b""
        frozen.tick(0.5)
        changed = await client.get("/api/offers", params=params, headers={"If-None-Match": etag})
        body = await changed.json()
        assert changed.status == 200 and body["data"][0]["title"] == "After"
        assert changed.headers["ETag"] != etag and body["success"] is True
        assert body["timestamp"].endswith("Z") and body["pagination"]["total"] == 1
