"""Notifications, and events that survive a Redis outage (the outbox sweep), and exact amounts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.events import sweep_unpublished
from common.models import User
from common.redis import events_channel
from common.services.ledger import post_entry
from common.services.notifications import (
    NewNotification,
    notification_json,
    notification_json_sql,
    notify,
)
from common.services.payments import cancel_payment, request_withdrawal
from common.services.sales import approve_sale, credit_sale
from common.uow import SyncContext
from tests.fixtures.factories import auth_headers, make_user
from tests.fixtures.money_factories import make_offer


async def test_notifications_list_read_and_read_all(client, session: Session, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    user, other = make_user(session), make_user(session)
    ids = notify(session, [NewNotification(user_id=user.id, type="t", title=f"n{i}") for i in range(3)])
    notify(session, [NewNotification(user_id=other.id, type="t", title="theirs")])
    session.commit()
    headers = auth_headers(settings, user)
    body = await (await client.get("/api/notifications", headers=headers)).json()
    assert [n["id"] for n in body["data"]] == ids[::-1]
    assert body["data"][0]["read"] is False and body["pagination"]["total"] == 3
    assert (await client.post(f"/api/notifications/{ids[0]}/read", headers=headers)).status == 200
    unread = await (await client.get("/api/notifications", params={"unread": "true"}, headers=headers)).json()
    assert [n["id"] for n in unread["data"]] == ids[:0:-1]
    theirs = session.execute(text("SELECT id FROM notifications WHERE user_id = :u"), {"u": other.id}).scalar_one()
    assert (await client.post(f"/api/notifications/{theirs}/read", headers=headers)).status == 404
    resp = await client.post("/api/notifications/read-all", headers=headers)
    assert (await resp.json())["data"] == {"updated": 2}
    unread = await (await client.get("/api/notifications", params={"unread": "true"}, headers=headers)).json()
    assert unread["data"] == []


def test_notification_json_in_sql_is_the_one_in_python(session: Session) -> None:
    user = make_user(session)
    ids = notify(session, [
        NewNotification(user_id=user.id, type="t", title="Hi", body="b", data={"saleId": 1, "amount": 7.5}),
        NewNotification(user_id=user.id, type="u", title="Read"),
    ])
    session.execute(text(
        "UPDATE notifications SET created_at = '2024-02-29 23:59:59.123999+05', "
        "read_at = CASE WHEN id = :id THEN timestamptz '2024-03-01 00:00:00.000999+00' END"), {"id": ids[1]})
    rows = session.execute(text(
        f"SELECT n.*, {notification_json_sql('n')} AS json FROM notifications n "
        "WHERE user_id = :u ORDER BY id"), {"u": user.id}).mappings().all()
    assert [r["json"] for r in rows] == [orjson.loads(orjson.dumps(notification_json(r))) for r in rows]
    assert [(r["json"]["read"], r["json"]["createdAt"]) for r in rows] == [
        (False, "2024-02-29T18:59:59.123Z"), (True, "2024-02-29T18:59:59.123Z")]


@pytest.mark.committed
def test_event_published_after_redis_returns(committed: Engine, settings: Settings, redis_sync: redis.Redis) -> None:
    down = SyncContext.create(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), pool_size=1)
    try:
        with down.transaction() as session:  # commits; the publish fails and is left to the sweep
            user = make_user(session)
            post_entry(session, user_id=user.id, amount=Decimal("1.50"), kind="prize", key="p:1")
    finally:
        down.close()
    pubsub = redis_sync.pubsub()
    pubsub.subscribe(events_channel(settings))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    with Session(committed) as session, session.begin():
        assert sweep_unpublished(session, client=redis_sync, channel=events_channel(settings),
                                 older_than=dt.timedelta(0)) == 1
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    event = orjson.loads(message["data"])
    assert event["event"] == "balance:updated"
    assert event["data"] == {"newBalance": 1.5, "change": 1.5, "reason": "prize"}


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amounts=st.lists(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5000), places=2), min_size=1, max_size=6),
    share=st.decimals(min_value=0, max_value=1, places=4),
    withdraw_share=st.fractions(min_value=0, max_value=1),
)
def test_random_amounts_stay_exact(session: Session, amounts, share, withdraw_share) -> None:  # type: ignore[no-untyped-def]
    with session.begin_nested() as nested:
        user = make_user(session)
        ext = f"o-{user.id}"
        make_offer(session, network="testnet", external_id=ext, user_share=share)
        expected = Decimal(0)
        for i, amount in enumerate(amounts):
            sale = credit_sale(session, network="testnet", external_id=f"{user.id}-{i}", user_id=user.id,
                               offer_external_id=ext, amount=amount, hold_seconds=0)
            approve_sale(session, sale_id=sale.sale_id)  # type: ignore[arg-type]
            expected += (amount * share).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
        session.expire_all()
        fresh = session.get(User, user.id)
        assert fresh is not None and fresh.balance == expected and fresh.pending_balance == 0
        withdraw = (expected * Decimal(withdraw_share.numerator) / Decimal(withdraw_share.denominator)).quantize(
            Decimal("0.01"), rounding="ROUND_DOWN")
        if withdraw > 0:
            payment = request_withdrawal(session, user_id=user.id, amount=withdraw, method="paypal",
                                         destination="x@example.com", minimum=Decimal("0.01"),
                                         auto_pay_limit=Decimal(100))
            session.expire_all()
            assert session.get(User, user.id).balance == expected - withdraw  # type: ignore[union-attr]
            cancel_payment(session, user_id=user.id, payment_id=payment["id"])
        session.expire_all()
        total = session.execute(text("SELECT sum(amount) FROM ledger_entries WHERE user_id = :u"),
                                {"u": user.id}).scalar_one()
        assert session.get(User, user.id).balance == expected == (total or 0)  # type: ignore[union-attr]
        nested.rollback()
