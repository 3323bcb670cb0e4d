"""Amounts a network reports are bounded (docs/money.md "Amounts from networks"): a signed callback
with a huge, non-finite or over-precise amount is refused with its log row, never a 500."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from common.models import PostbackLog, Sale
from tests.fixtures.factories import make_user
from tests.fixtures.money import (  # noqa: F401
    money_client,
    money_settings,
)
from tests.fixtures.money_factories import make_offer
from tests.fixtures.schemes import signed

UNUSABLE = ["1e30", "-1e30", "NaN", "sNaN", "Infinity", "-Inf", "1000000.01", "1e-999999999",
            "0.000000001", "12abc"]


@pytest.mark.parametrize("amount", UNUSABLE)
async def test_unusable_amounts_are_422_with_an_invalid_log_row(money_client, session: Session, amount: str) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="*")
    session.commit()
    resp = await money_client.get("/api/postbacks/testnet", params=signed("testnet", user=user.id, txn="t1", amount=amount))
    body = await resp.json()
    assert resp.status == 422 and body["success"] is False, body
    assert session.query(Sale).count() == 0
    logged = session.query(PostbackLog).one()
    assert (logged.verdict, logged.params["amount"]) == ("invalid", amount)


async def test_the_largest_allowed_amount_credits(money_client, session: Session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network="testnet", external_id="*", user_share=Decimal(1))
    session.commit()
    resp = await money_client.get("/api/postbacks/testnet", params=signed("testnet", user=user.id, txn="t1", amount="1000000.00"))
    assert resp.status == 200, await resp.text()
    assert session.query(Sale).one().commission_amount == Decimal("1000000.00")


@pytest.mark.parametrize("network", ["cpx", "sr", "tapjoy"])
async def test_every_scheme_logs_a_huge_amount_as_invalid(money_client, session: Session, network: str) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session)
    make_offer(session, network=network, external_id="*")
    session.commit()
    resp = await money_client.get(f"/api/postbacks/{network}", params=signed(network, user=user.id, txn="t1", amount="1e30"))
    assert resp.status in (403, 422)  # tapjoy: 403, its "do not retry"
    assert session.query(Sale).count() == 0
    assert session.query(PostbackLog).one().verdict == "invalid"
