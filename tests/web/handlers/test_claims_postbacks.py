"""How a missing-credit claim and the network's own reports of one conversion settle each other
(docs/money.md "Claims"): a conversion is paid once, and the network's chargeback of a claimed
conversion takes it back."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import Claim, LedgerEntry, PostbackLog, Sale, User
from common.services.claims import approve_claim
from common.services.ledger import check_ledger
from common.services.sales import approve_sale, credit_sale
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money import live_money_client, money_client, money_settings  # noqa: F401
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
    # A state the rules no longer make (a claim's sale cannot be rejected while it is only the
    # claim's, 409 claim_sale), written by hand: the click check must not answer claimed for it.
    session.execute(text("UPDATE sales SET status = 'rejected', decided_at = now() WHERE id = :id"), {"id": sale_id})
    session.execute(text("UPDATE users SET pending_balance = 0 WHERE id = :id"), {"id": user.id})
    session.commit()
    status, _ = await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1", click_id=click_id)
    assert status == 422
    assert session.query(PostbackLog).one().outcome == "click_mismatch"
    assert session.get(Sale, sale_id).network == "claim"  # type: ignore[union-attr]
    assert session.get(Claim, session.get(Sale, sale_id).claim_id).status == "approved"  # type: ignore[union-attr]
    # check-ledger reports that state (an approved claim whose own sale was rejected); the test's
    # last step puts the claim where a decision would, so the check after the test passes.
    assert any(p.startswith("claim ") for p in check_ledger(session))
    session.execute(text("UPDATE claims SET status = 'rejected', amount = NULL WHERE id = "
                         "(SELECT claim_id FROM sales WHERE id = :id)"), {"id": sale_id})
    session.execute(text("ALTER TABLE sales DISABLE TRIGGER USER"))
    session.execute(text("UPDATE sales SET claim_id = NULL WHERE id = :id"), {"id": sale_id})
    session.execute(text("ALTER TABLE sales ENABLE TRIGGER USER"))
    session.commit()


async def _claim(client, settings: Settings, user: User, click_id: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    resp = await client.post("/api/claims", json={"clickId": click_id, "message": "never credited"},
                             headers=auth_headers(settings, user))
    return resp.status, await resp.json()


async def _claimable(client, settings: Settings, user: User) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    listed = await (await client.get("/api/clicks", headers=auth_headers(settings, user))).json()
    return {c["clickId"]: c["claimable"] for c in listed["data"]}


async def test_a_conversion_the_network_reported_without_a_click_cannot_be_claimed(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The member completes the offer once and the network reports it without naming a click:
    the click is not claimable, and a claim on it is refused."""
    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    assert (await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1"))[0] == 200
    assert await _claimable(money_client, money_settings, user) == {click_id: False}
    status, body = await _claim(money_client, money_settings, user, click_id)
    assert (status, body["code"]) == (422, "offer_converted"), body
    assert body["errors"][0].startswith("clickId:")
    assert session.query(Claim).count() == 0
    assert _balances(session, user) == (0, Decimal("7.00"))


async def test_two_clicks_one_conversion_the_other_click_cannot_be_claimed(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    a, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    b, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    assert (await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1", click_id=b))[0] == 200
    assert await _claimable(money_client, money_settings, user) == {a: False, b: False}
    status, body = await _claim(money_client, money_settings, user, a)
    assert (status, body["code"]) == (422, "offer_converted"), body


async def test_an_earlier_conversion_does_not_stop_a_claim_but_a_rejected_later_one_does(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Only a conversion reported at or after the click could be the click's: an earlier one
    leaves the click claimable; a later one the network took back before it was approved stops
    it too (the network decided that conversion: a claim must not pay it after all)."""
    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    assert (await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="old"))[0] == 200
    session.execute(text("UPDATE sales SET created_at = now() - interval '3 days'"))
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    assert await _claimable(money_client, money_settings, user) == {click_id: True}
    credit = {"user_id": user.id, "offer_id": "o1", "txn_id": "net-1"}
    assert (await _postback(money_client, **credit))[0] == 200
    assert (await _postback(money_client, **credit, status="2"))[0] == 200  # rejected while pending
    assert await _claimable(money_client, money_settings, user) == {click_id: False}
    status, body = await _claim(money_client, money_settings, user, click_id)
    assert (status, body["code"]) == (422, "offer_converted"), body


async def test_the_approval_of_a_claim_whose_conversion_was_reported_meanwhile_is_409(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    status, body = await _claim(money_client, money_settings, user, click_id)
    assert status == 201
    claim_id = body["data"]["id"]
    assert (await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1"))[0] == 200
    resp = await money_client.post(f"/api/admin/claims/{claim_id}/approve", headers=auth_headers(money_settings, admin))
    assert (resp.status, (await resp.json())["code"]) == (409, "offer_converted")
    assert session.get(Claim, claim_id).status == "open"  # type: ignore[union-attr]
    assert session.query(Sale).count() == 1
    assert _balances(session, user) == (0, Decimal("7.00"))


async def test_a_late_report_without_a_click_is_the_approved_claims_conversion(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The other order: the claim is approved and paid, then the network reports the conversion
    late, naming no click or another click made before the claim's sale: it is the claim's
    conversion (``claimed``), and its chargeback takes the claim's money back."""
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    other_click, _ = make_click(session, user.id, offer_id, age=3 * DAY)
    _, _, sale_id = await _approved_claim(money_client, session, money_settings, user, admin, offer_id)
    for click in (None, other_click):
        values = {"user_id": user.id, "offer_id": "o1", "txn_id": "net-1"}
        if click is not None:
            session.execute(text("UPDATE sales SET network = 'claim', external_id = 'claim:x'"))
            session.commit()
            values["click_id"] = click
        status, body = await _postback(money_client, **values)
        assert (status, body) == (200, {"saleId": sale_id, "status": "approved"})
        assert session.query(Sale).count() == 1
        assert session.get(Sale, sale_id).external_id == "net-1"  # type: ignore[union-attr]
    assert _balances(session, user) == (Decimal("7.00"), 0)
    assert (await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-1", status="2"))[0] == 200
    assert _balances(session, user) == (0, 0)


async def test_a_conversion_through_a_click_made_after_the_claims_sale_is_credited(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """An offer that converts again: a report naming a click made after the claim's sale is a new
    conversion, credited; the claim's sale keeps waiting for its own report."""
    user, admin = make_user(session), make_user(session, role="admin")
    offer_id = make_offer(session, external_id="o1")
    _, _, sale_id = await _approved_claim(money_client, session, money_settings, user, admin, offer_id)
    session.execute(text("UPDATE sales SET created_at = now() - interval '1 hour'"))
    session.execute(text("UPDATE claims SET decided_at = now() - interval '1 hour'"))
    new_click, _ = make_click(session, user.id, offer_id)
    session.commit()
    status, body = await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="net-2", click_id=new_click)
    assert status == 200 and body is not None and body["saleId"] != sale_id
    assert session.get(Sale, sale_id).network == "claim"  # type: ignore[union-attr]
    assert _balances(session, user) == (Decimal("7.00"), Decimal("7.00"))


def test_check_ledger_sees_a_conversion_paid_by_a_claim_and_the_network(session: Session) -> None:
    from common.services.ledger import check_ledger

    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    claim_id = session.execute(text(
        "INSERT INTO claims (click_id, user_id, offer_id, message, status, amount, decided_at) "
        "VALUES (:c, :u, :o, 'm', 'approved', 7, now()) RETURNING id"),
        {"c": click_id, "u": user.id, "o": offer_id}).scalar_one()

    def sale(network: str, external_id: str, *, claim: int | None = None, click: str | None = None,
             age: str = "0", status: str = "rejected") -> int:
        return int(session.execute(text(
            "INSERT INTO sales (user_id, offer_id, network, external_id, sale_amount, "
            "commission_amount, status, hold_until, created_at, click_id, claim_id) "
            "VALUES (:u, :o, :n, :e, 7, 7, :s, now(), now() - CAST(:age AS interval), :click, :claim) "
            "RETURNING id"), {"u": user.id, "o": offer_id, "n": network, "e": external_id,
                              "s": status, "age": age, "click": click, "claim": claim}).scalar_one())

    # Rejected sales leave the money alone (pending balances stay zero): only the rule speaks.
    claimed = sale("claim", f"claim:{claim_id}", claim=claim_id, click=click_id, status="reversed")
    assert check_ledger(session) == []
    before = sale("testnet", "before-click", age="3 days", status="reversed")  # an earlier conversion
    assert check_ledger(session) == []
    between = sale("testnet", "between", age="1 day", status="reversed")  # the approval should have refused
    assert check_ledger(session) == [
        f"claim {claim_id}: its sale {claimed} and sale {between} pay one conversion"]
    session.execute(text("UPDATE sales SET status = 'rejected' WHERE id = :id"), {"id": between})
    session.execute(text("UPDATE claims SET decided_at = now() - interval '2 hours'"))
    later = sale("testnet", "late", age="1 hour", status="reversed")  # should have been the claim's
    assert check_ledger(session) == [
        f"claim {claim_id}: its sale {claimed} and sale {later} pay one conversion"]
    session.execute(text("UPDATE sales SET network = 'testnet', external_id = 'net-1' WHERE id = :id"),
                    {"id": claimed})  # the claim's sale has its network transaction: a new one
    assert check_ledger(session) == []
    assert before


async def test_a_chargeback_before_its_credit_keeps_the_click(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Out of order: the chargeback naming the click arrives first (stored as a rejected sale of
    that click), then the credit (a repeat of the decided transaction). The click has its sale:
    it is not claimable, and a claim on it is refused."""
    user = make_user(session)
    offer_id = make_offer(session, external_id="o1")
    click_id, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    report = {"user_id": user.id, "offer_id": "o1", "txn_id": "net-1", "click_id": click_id}
    status, early = await _postback(money_client, **report, status="2")
    assert status == 200 and early is not None and early["status"] == "rejected"
    assert await _postback(money_client, **report) == (200, early)
    assert session.get(Sale, early["saleId"]).click_id == click_id  # type: ignore[union-attr]
    listed = await (await money_client.get("/api/clicks", headers=auth_headers(money_settings, user))).json()
    assert [(c["saleId"], c["saleStatus"], c["claimable"]) for c in listed["data"]] == [
        (early["saleId"], "rejected", False)]
    status, body = await _claim(money_client, money_settings, user, click_id)
    assert (status, body["code"]) == (422, "click_has_sale")
    assert [r.outcome for r in session.query(PostbackLog).order_by(PostbackLog.id)] == [
        "reversal_before_credit", "duplicate"]
    assert _balances(session, user) == (0, 0)


async def test_a_chargeback_naming_a_click_is_checked_like_a_credit(money_client, session: Session, money_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, other = make_user(session), make_user(session)
    offer_id = make_offer(session, external_id="o1")
    theirs, _ = make_click(session, other.id, offer_id, age=2 * DAY)
    sold, _ = make_click(session, user.id, offer_id, age=2 * DAY)
    session.commit()
    assert (await _postback(money_client, user_id=user.id, offer_id="o1", txn_id="t1", click_id=sold))[0] == 200
    for txn, click in (("t2", theirs), ("t3", sold), ("t4", "x" * 22)):
        status, _ = await _postback(money_client, user_id=user.id, offer_id="o1", txn_id=txn,
                                    click_id=click, status="2")
        assert status == 422, (txn, click)
    assert [r.outcome for r in session.query(PostbackLog).order_by(PostbackLog.id)][1:] == ["click_mismatch"] * 3
    assert session.query(Sale).count() == 1


async def _until_a_backend_waits_on_a_lock(engine: Engine, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE wait_event_type = 'Lock'")).scalar_one():
                return
        await asyncio.sleep(0.02)
    raise AssertionError("no backend ever waited on a lock")


def _setup_click(engine: Engine, *, claim: bool) -> tuple[int, str, int | None]:
    with Session(engine, expire_on_commit=False) as s, s.begin():
        user = make_user(s)
        offer_id = make_offer(s, external_id="o1")
        click_id, _ = make_click(s, user.id, offer_id, age=2 * DAY)
        claim_id = s.execute(text(
            "INSERT INTO claims (click_id, user_id, offer_id, message) VALUES (:c, :u, :o, 'm') "
            "RETURNING id"), {"c": click_id, "u": user.id, "o": offer_id}).scalar_one() if claim else None
    return user.id, click_id, claim_id


def _log(engine: Engine) -> list[tuple[str, int | None]]:
    with engine.connect() as conn:
        return [(r.outcome, r.sale_id) for r in conn.execute(text(
            "SELECT outcome, sale_id FROM postback_log ORDER BY id"))]


@pytest.mark.committed
async def test_a_postback_racing_a_claims_approval_logs_claimed(live_money_client, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    """The fast path's credit waits for an approval in flight, then is the claim's conversion:
    answered and logged ``claimed`` with the claim's sale."""
    user_id, click_id, claim_id = _setup_click(committed, claim=True)
    approval = Session(committed, expire_on_commit=False)
    approval.begin()
    sale_id = approve_claim(approval, claim_id=claim_id or 0, amount=None, audit={"actor_id": None})["sale_id"]
    report = generic_params(user_id=user_id, offer_id="o1", txn_id="net-1", click_id=click_id)
    answer = asyncio.ensure_future(live_money_client.get("/api/postbacks/testnet", params=report))
    await _until_a_backend_waits_on_a_lock(committed)
    approval.commit()
    approval.close()
    resp = await answer
    assert (resp.status, (await resp.json())["data"]) == (200, {"saleId": sale_id, "status": "pending"})
    assert _log(committed) == [("claimed", sale_id)]
    with committed.connect() as conn:
        assert conn.execute(text("SELECT network, external_id FROM sales")).all() == [("testnet", "net-1")]


@pytest.mark.committed
async def test_two_transactions_racing_for_one_click_log_the_refusal(live_money_client, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    """Two transaction ids name one click: the fast path's credit waits for the other's sale of
    the click, then is refused, and its log row says so (not ``duplicate``)."""
    user_id, click_id, _ = _setup_click(committed, claim=False)
    first = Session(committed, expire_on_commit=False)
    first.begin()
    assert credit_sale(first, network="testnet", external_id="net-1", user_id=user_id,
                       offer_external_id="o1", amount=Decimal(10), hold_seconds=3600,
                       click_id=click_id, click_days=90).outcome == "credited"
    report = generic_params(user_id=user_id, offer_id="o1", txn_id="net-2", click_id=click_id)
    answer = asyncio.ensure_future(live_money_client.get("/api/postbacks/testnet", params=report))
    await _until_a_backend_waits_on_a_lock(committed)
    first.commit()
    first.close()
    resp = await answer
    assert resp.status == 422
    assert _log(committed) == [("click_mismatch", None)]
