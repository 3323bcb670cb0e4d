"""How a missing-credit claim and the network's own reports of one conversion settle each other
(docs/money.md "Claims"): a conversion is paid once, and the network's chargeback of a claimed
conversion takes it back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import Claim, LedgerEntry, PostbackLog, Sale, User
from common.services.sales import approve_sale
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import money_client, money_settings  # noqa: F401
from tests.fixtures.money_factories import generic_params, make_click, make_offer

DAY = dt.timedelta(days=1)


def _balances(session: Session, user: User) -> tuple[Decimal, Decimal]:
    session.expire_all()
    fresh = session.get(User, user.id)
    assert fresh is not None
    return fresh.balance, fresh.pending_balance


async def _postback(client, **values: object) -> tuple[int, dict | None]:  # type: ignore[no-untyped-def]
    """(status, the answer's data) of a signed generic postback."""
    resp = await client.get("/api/postbacks/testnet", params=generic_params(**values))
    return resp.status, (await resp.json()).get("data")


async def _approved_claim(client, session: Session, settings: Settings, user: User, admin: User,  # type: ignore[no-untyped-def]
                          offer_id: int, *, credit: bool = True) -> tuple[str, int, int]:
    """A click claimed and approved (its sale credited by the worker unless ``credit`` is
    False): (click id, claim id, sale id)."""
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    resp = await client.post("/api/claims", json={"clickId": click_id, "message": "never credited"},
                             headers=auth_headers(settings, user))
    assert resp.status == 201, await resp.json()
    claim_id = (await resp.json())["data"]["id"]
    resp = await client.post(f"/api/admin/claims/{claim_id}/approve", headers=auth_headers(settings, admin))
    assert resp.status == 202, await resp.json()
    sale_id = (await resp.json())["data"]["saleId"]
    if credit:
        assert approve_sale(session, sale_id=sale_id)  # what the enqueued task does
        session.commit()
    return click_id, claim_id, sale_id


async def test_the_networks_chargeback_of_a_claimed_conversion_takes_it_back(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")  # payout 7.00
    click_id, _, sale_id = await _approved_claim(money_client, session, money_settings, user, admin, offer_id)
    assert _balances(session, user) == (Decimal("7.00"), 0)

    # The network reports the conversion late: it becomes the claim's sale's identity.
    credit = {"user_id": user.id, "offer_id": "o1", "txn_id": "net-1", "click_id": click_id}
    assert await _postback(money_client, **credit) == (200, {"saleId": sale_id, "status": "approved"})
    sale = session.get(Sale, sale_id)
    assert sale is not None and (sale.network, sale.external_id) == ("testnet", "net-1") and sale.claim_id
    # Its repeat is a repeat of that transaction.
    assert await _postback(money_client, **credit) == (200, {"saleId": sale_id, "status": "approved"})
    assert [(r.outcome, r.sale_id) for r in session.query(PostbackLog).order_by(PostbackLog.id)] == [
        ("claimed", sale_id), ("duplicate", sale_id)]

    # The chargeback of net-1 reverses the claim's sale through the reversal rule.
    status, body = await _postback(money_client, **credit, status="2")
    assert (status, body) == (200, {"saleId": sale_id, "status": "reversed"})
    assert session.query(Sale).count() == 1
    assert _balances(session, user) == (0, 0)
    entries = [(e.kind, e.amount) for e in session.query(LedgerEntry).filter_by(user_id=user.id).order_by(LedgerEntry.id)]
    assert entries == [("sale_credit", Decimal("7.00")), ("sale_reversal", Decimal("-7.00"))]
    assert session.query(PostbackLog).order_by(PostbackLog.id.desc()).first().outcome == "reversed"  # type: ignore[union-attr]


async def test_a_chargeback_before_the_claims_credit_rejects_its_sale(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The claim's sale is still pending (the worker has not credited it) when the network
    reports the conversion and charges it back: the sale is rejected, nothing is paid."""
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    click_id, _, sale_id = await _approved_claim(money_client, session, money_settings, user, admin,
                                                 offer_id, credit=False)
    assert _balances(session, user) == (0, Decimal("7.00"))
    credit = {"user_id": user.id, "offer_id": "o1", "txn_id": "net-1", "click_id": click_id}
    assert (await _postback(money_client, **credit))[0] == 200
    status, body = await _postback(money_client, **credit, status="2")
    assert (status, body) == (200, {"saleId": sale_id, "status": "rejected"})
    assert not approve_sale(session, sale_id=sale_id)
    assert _balances(session, user) == (0, 0)


async def test_a_chargeback_naming_the_claimed_click_without_a_credit_takes_it_back(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The network never sent the credit, only its chargeback, naming the claimed click: that is
    the claim's conversion, reversed."""
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    click_id, _, sale_id = await _approved_claim(money_client, session, money_settings, user, admin, offer_id)
    status, body = await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1",
                                   click_id=click_id, status="2")
    assert (status, body) == (200, {"saleId": sale_id, "status": "reversed"})
    assert session.query(Sale).count() == 1
    assert _balances(session, user) == (0, 0)


async def test_another_transaction_naming_a_claimed_click_is_refused(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Once the network's transaction is the claim's sale, a second transaction id for the same
    click is refused like any click that already converted."""
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    click_id, _, _ = await _approved_claim(money_client, session, money_settings, user, admin, offer_id)
    assert (await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1",
                            click_id=click_id))[0] == 200
    status, _ = await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-2",
                                click_id=click_id)
    assert status == 422
    assert session.query(PostbackLog).order_by(PostbackLog.id.desc()).first().outcome == "click_mismatch"  # type: ignore[union-attr]
    assert session.query(Sale).count() == 1
    assert _balances(session, user) == (Decimal("7.00"), 0)


async def test_a_claims_sale_rejected_by_an_admin_is_not_claimed(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    click_id, _, sale_id = await _approved_claim(money_client, session, money_settings, user, admin,
                                                 offer_id, credit=False)
    session.execute(text("UPDATE sales SET status = 'rejected', decided_at = now() WHERE id = :id"), {"id": sale_id})
    session.execute(text("UPDATE users SET pending_balance = 0 WHERE id = :id"), {"id": user.id})
    session.commit()
    status, _ = await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1", click_id=click_id)
    assert status == 422
    assert session.query(PostbackLog).one().outcome == "click_mismatch"
    assert session.get(Sale, sale_id).network == "claim"  # type: ignore[union-attr]
    assert session.get(Claim, session.get(Sale, sale_id).claim_id).status == "approved"  # type: ignore[union-attr]
