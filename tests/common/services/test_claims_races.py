"""A claim's approval (common/services/claims.py) against the network's credit of the same
conversion, each driven in the bad order on a real PostgreSQL: one conversion is paid once."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.claims import ClaimConflict, approve_claim
from common.services.sales import SaleOutcome, credit_sale
from tests.fixtures.factories import make_user
from tests.fixtures.interleave import Background, wait_until_blocked
from tests.fixtures.money_factories import make_click, make_offer

pytestmark = pytest.mark.committed


def _open_claim(engine: Engine) -> tuple[int, str, int]:
    """A member with a two-day-old click of offer o1 (payout 7.00) and an open claim on it:
    (user id, click id, claim id)."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        user = make_user(s)
        offer_id = make_offer(s, network="testnet", external_id="o1")
        click_id, _ = make_click(s, user.id, offer_id, age=dt.timedelta(days=2))
        claim_id = s.execute(text(
            "INSERT INTO claims (click_id, user_id, offer_id, message) VALUES (:c, :u, :o, 'm') "
            "RETURNING id"), {"c": click_id, "u": user.id, "o": offer_id}).scalar_one()
    return user.id, click_id, claim_id


def _credit(session: Session, user_id: int, click_id: str | None = None) -> SaleOutcome:
    return credit_sale(session, network="testnet", external_id="net-1", user_id=user_id,
                       offer_external_id="o1", amount=Decimal(10), hold_seconds=3600,
                       click_id=click_id, click_days=90)


def _approve(session: Session, claim_id: int) -> object:
    return approve_claim(session, claim_id=claim_id, amount=None, audit={"actor_id": None})


def _state(engine: Engine, user_id: int) -> tuple[list[tuple[str, str, str]], str, Decimal]:
    with engine.connect() as conn:
        sales = [tuple(r) for r in conn.execute(text(
            "SELECT network, external_id, status FROM sales ORDER BY id"))]
        claim = conn.execute(text("SELECT status FROM claims")).scalar_one()
        pending = conn.execute(text("SELECT pending_balance FROM users WHERE id = :u"),
                               {"u": user_id}).scalar_one()
    return sales, claim, pending  # type: ignore[return-value]


def test_a_credit_in_flight_makes_the_approval_409(committed: Engine) -> None:
    """The network's credit (naming no click) has read the claim open and inserted its sale; the
    approval waits for it, then sees the conversion and is refused (the claim stays open)."""
    user_id, _, claim_id = _open_claim(committed)
    credit = Session(committed, expire_on_commit=False)
    credit.begin()
    assert _credit(credit, user_id).outcome == "credited"
    approval = Background(committed, lambda s: _approve(s, claim_id)).start()
    wait_until_blocked(committed, approval.pid)
    credit.commit()
    credit.close()
    approval.join()
    assert isinstance(approval.error, ClaimConflict) and approval.error.code == "offer_converted"
    assert _state(committed, user_id) == ([("testnet", "net-1", "pending")], "open", Decimal("7.00"))


@pytest.mark.parametrize("names_the_click", [False, True])
def test_an_approval_in_flight_makes_the_credit_the_claims(committed: Engine, names_the_click: bool) -> None:
    """The approval has taken the claim and made its sale; the network's credit of the
    conversion (naming the claim's click or none) waits for it, then is the claim's conversion:
    ``claimed``, the network's transaction the claim's sale's, nothing more credited."""
    user_id, click_id, claim_id = _open_claim(committed)
    approval = Session(committed, expire_on_commit=False)
    approval.begin()
    sale_id = _approve(approval, claim_id)["sale_id"]  # type: ignore[index]
    credit = Background(committed, lambda s: _credit(s, user_id, click_id if names_the_click else None)).start()
    wait_until_blocked(committed, credit.pid)
    approval.commit()
    approval.close()
    credit.join()
    assert credit.error is None, credit.error
    assert (credit.result.sale_id, credit.result.outcome) == (sale_id, "claimed")
    assert _state(committed, user_id) == ([("testnet", "net-1", "pending")], "approved", Decimal("7.00"))
