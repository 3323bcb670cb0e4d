"""A claim against the conversions the network decided, and two approvals of one member's claims
at once: one conversion is paid once (docs/money.md "Claims"), driven on real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.claims import ClaimConflict, ClaimRefused, approve_claim, file_claim
from common.services.ledger import check_ledger
from common.services.sales import credit_sale, reverse_callback
from tests.fixtures.factories import make_user
from tests.fixtures.interleave import Background, wait_until_blocked
from tests.fixtures.money_factories import make_click, make_offer

pytestmark = pytest.mark.committed


def _setup(engine: Engine, clicks: int = 1) -> tuple[int, list[str]]:
    with Session(engine, expire_on_commit=False) as s, s.begin():
        user = make_user(s)
        offer_id = make_offer(s, network="testnet", external_id="o1")
        ids = [make_click(s, user.id, offer_id, age=dt.timedelta(days=3 - i))[0] for i in range(clicks)]
    return user.id, ids


def _claim(s: Session, user_id: int, click: str) -> int:
    return file_claim(s, user_id=user_id, click_id=click, message="never credited",
                      now=dt.datetime.now(dt.UTC), min_age_seconds=86400, max_age_days=30)["id"]


def _balance(engine: Engine, user_id: int) -> Decimal:
    with engine.connect() as c:
        return c.execute(text("SELECT balance FROM users WHERE id=:u"), {"u": user_id}).scalar_one()


@pytest.mark.parametrize("early", [False, True])
def test_a_conversion_the_network_took_back_cannot_be_claimed(committed: Engine, early: bool) -> None:
    """The network reports the conversion (naming no click) and takes it back, or only takes it
    back: the click made before it is not claimable, and nothing is paid."""
    user_id, (click,) = _setup(committed)
    with Session(committed) as s, s.begin():
        if not early:
            assert credit_sale(s, network="testnet", external_id="net-1", user_id=user_id,
                               offer_external_id="o1", amount=Decimal(10), hold_seconds=3600,
                               click_days=90).outcome == "credited"
        out = reverse_callback(s, network="testnet", external_id="net-1", user_id=user_id,
                               offer_external_id="o1", amount=Decimal(10), click_days=90)
        assert out.status == "rejected"
    with Session(committed) as s, s.begin(), pytest.raises(ClaimRefused) as refused:
        _claim(s, user_id, click)
    assert refused.value.code == "offer_converted"
    assert _balance(committed, user_id) == 0


def test_two_claims_approved_at_once_pay_one_conversion(committed: Engine) -> None:
    """Claims on two clicks of one offer, approved concurrently: the second waits for the first
    and is refused (409 offer_converted), so one conversion is paid once."""
    user_id, (a, b) = _setup(committed, clicks=2)
    with Session(committed) as s, s.begin():
        ca, cb = _claim(s, user_id, a), _claim(s, user_id, b)
    first = Session(committed)
    first.begin()
    approve_claim(first, claim_id=ca, amount=None, audit={"actor_id": None})
    second = Background(committed, lambda s: approve_claim(
        s, claim_id=cb, amount=None, audit={"actor_id": None})).start()
    wait_until_blocked(committed, second.pid)
    first.commit()
    first.close()
    second.join()
    assert isinstance(second.error, ClaimConflict) and second.error.code == "offer_converted"
    with Session(committed) as s:
        n = s.execute(text("SELECT count(*) FROM sales WHERE user_id=:u"), {"u": user_id}).scalar_one()
        assert (n, check_ledger(s)) == (1, [])
