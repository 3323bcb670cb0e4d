"""Sale approvals: once per sale whatever the deliveries, consistent against reversals."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import orjson
import pytest
import redis
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.models import Notification, OutboxEvent, Sale, User
from common.services.notifications import notification_json
from common.services.sales import approve_due_sales, approve_sale, credit_sale, reverse_sale
from common.taskqueue import enqueue
from common.uow import SyncContext
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money_factories import make_offer


def _sale(session: Session, user_id: int, txn: str, amount: str = "10.00", hold: int = 0) -> int:
    outcome = credit_sale(
        session, network="testnet", external_id=txn, user_id=user_id, offer_external_id="o1",
        amount=Decimal(amount), hold_seconds=hold,
    )
    assert outcome.sale_id is not None
    return outcome.sale_id


def _wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_batch_approves_due_sales_only(session: Session) -> None:
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    due = [_sale(session, user.id, f"t{i}") for i in range(3)]
    held = _sale(session, user.id, "later", hold=3600)
    assert approve_due_sales(session, batch=2) == 2
    assert approve_due_sales(session, batch=2) == 1
    assert approve_due_sales(session) == 0
    statuses = {s.id: s.status for s in session.query(Sale)}
    assert statuses == {**{d: "approved" for d in due}, held: "pending"}
    session.expire_all()
    fresh = session.get(User, user.id)
    assert fresh is not None and (fresh.balance, fresh.pending_balance) == (Decimal("21.00"), Decimal("7.00"))
    balances = [e.data["newBalance"] for e in session.query(OutboxEvent).filter_by(event="balance:updated").order_by(OutboxEvent.id)]
    assert balances == [7.0, 14.0, 21.0]
    assert session.query(Notification).filter_by(type="sale_approved").count() == 3
    pushed = session.query(OutboxEvent).filter_by(event="notification:new").order_by(OutboxEvent.id).all()
    stored = session.execute(select(Notification.__table__).order_by(Notification.id)).mappings().all()
    assert [e.data for e in pushed] == [orjson.loads(orjson.dumps(notification_json(r))) for r in stored]
    assert stored[0]["data"] == {"saleId": due[0], "amount": 7.0}


def test_approve_twice_credits_once_and_reversal_after_approval_debits(session: Session) -> None:
    user = make_user(session)
    make_offer(session, network="testnet", external_id="o1")
    sale = _sale(session, user.id, "t1")
    assert approve_sale(session, sale_id=sale) is True
    assert approve_sale(session, sale_id=sale) is False
    assert reverse_sale(session, sale_id=sale) == "reversed"
    assert reverse_sale(session, sale_id=sale) == "already_final"
    assert approve_sale(session, sale_id=sale) is False
    session.expire_all()
    assert session.get(User, user.id).balance == 0  # type: ignore[union-attr]


async def test_sales_list_is_own_and_filtered(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, other = make_user(session), make_user(session)
    make_offer(session, network="testnet", external_id="o1", title="Play it")
    first = _sale(session, user.id, "t1", amount="2.50")
    second = _sale(session, user.id, "t2")
    _sale(session, other.id, "t3")
    approve_sale(session, sale_id=second)
    session.commit()
    resp = await client.get("/api/sales", headers=auth_headers(settings, user))
    body = await resp.json()
    assert [s["id"] for s in body["data"]] == [second, first]
    assert body["pagination"]["total"] == 2
    assert body["data"][1] == {
        "id": first, "userId": user.id, "offerId": body["data"][1]["offerId"],
        "offerTitle": "Play it", "externalId": "t1", "saleAmount": 2.5, "commissionAmount": 1.75,
        "status": "pending", "createdAt": body["data"][1]["createdAt"], "decidedAt": None,
        "clickId": None,
    }
    resp = await client.get("/api/sales", params={"status": "approved"}, headers=auth_headers(settings, user))
    assert [s["id"] for s in (await resp.json())["data"]] == [second]
    assert (await client.get("/api/sales")).status == 401
    bad = await client.get("/api/sales", params={"status": "nope"}, headers=auth_headers(settings, user))
    assert bad.status == 400


@pytest.mark.committed
def test_approval_task_delivered_three_times_credits_once(celery_worker, committed: Engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from celery.worker import state

    with Session(committed) as session, session.begin():
        user = make_user(session)
        make_offer(session, network="testnet", external_id="o1")
        sale = _sale(session, user.id, "t1")
    for _ in range(3):
        enqueue("sales.approve_sale", sale)
    client = redis.Redis.from_url(settings.redis_url)

    def settled() -> bool:
        with committed.connect() as conn:
            status = conn.execute(text("SELECT status FROM sales")).scalar_one()
        return status == "approved" and client.llen("sales") == 0 and not state.active_requests

    _wait(settled)
    with committed.connect() as conn:
        assert conn.execute(text("SELECT balance FROM users")).scalar_one() == Decimal("7.00")
        assert conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one() == 1
    client.close()


@pytest.mark.committed
def test_approval_racing_reversal_ends_consistent(committed: Engine, settings: Settings) -> None:
    ctx = SyncContext.create(settings, pool_size=4)
    try:
        with ctx.transaction() as session:
            user = make_user(session)
            make_offer(session, network="testnet", external_id="o1")
            sales = [_sale(session, user.id, f"t{i}") for i in range(20)]

        def approve(sale_id: int) -> None:
            with ctx.transaction() as session:
                approve_sale(session, sale_id=sale_id)

        def reverse(sale_id: int) -> None:
            with ctx.transaction() as session:
                reverse_sale(session, sale_id=sale_id)

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(fn, s) for s in sales for fn in (approve, reverse)]
            for f in futures:
                f.result()
        with committed.connect() as conn:
            statuses = dict(conn.execute(text("SELECT status, count(*) FROM sales GROUP BY 1")).all())
            assert set(statuses) <= {"rejected", "reversed"} and sum(statuses.values()) == 20
            assert conn.execute(text("SELECT balance FROM users")).scalar_one() == 0
    finally:
        ctx.close()
