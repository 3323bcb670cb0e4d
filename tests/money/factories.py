"""Money rows for tests, made through the real services so the ledger always adds up."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.ledger import post_entry
from common.services.offers import create_offer
from tests.factories import make_user

_counter = itertools.count(1)


def fund(session: Session, user_id: int, amount: Decimal | str) -> None:
    """Give a user money the way an admin adjustment would: through the ledger."""
    post_entry(
        session, user_id=user_id, amount=Decimal(amount), kind="adjustment",
        key=f"test-fund:{user_id}:{next(_counter)}",
    )


def make_funded_user(session: Session, amount: Decimal | str = "0", **kwargs: object):  # type: ignore[no-untyped-def]
    user = make_user(session, **kwargs)  # type: ignore[arg-type]
    if Decimal(amount):
        fund(session, user.id, amount)
        session.refresh(user)
    return user


def committed_withdrawal(engine: Engine, amount: str = "10", destination: str = "me@example.com",
                         funds: str = "200") -> tuple[int, int]:
    """A funded user's withdrawal, committed (for real workers): (user id, payment id)."""
    from common.services.payments import request_withdrawal

    with Session(engine, expire_on_commit=False) as session, session.begin():
        user = make_funded_user(session, funds)
        payment = request_withdrawal(
            session, user_id=user.id, amount=Decimal(amount), method="paypal",
            destination=destination, minimum=Decimal(5), auto_pay_limit=Decimal(100))
    return user.id, payment["id"]


def make_offer(session: Session, **kwargs: object) -> int:
    n = next(_counter)
    values: dict[str, object] = {
        "title": f"Offer {n}", "category": "games", "network": "testnet",
        "external_id": f"ext-{n}", "status": "active", "network_payout": Decimal("10"),
        "user_share": Decimal("0.7"),
    }
    values.update(kwargs)
    return create_offer(session, **values)  # type: ignore[arg-type]


def generic_params(secret: str = "test-secret", **values: object) -> dict[str, str]:
    """A signed generic postback (API.md section 4)."""
    from common.postbacks import generic_signature

    params = {"status": "1", "amount": "10.00", **{k: str(v) for k, v in values.items()}}
    params["sig"] = generic_signature(secret, params)
    return params


TRACKING_URL = "https://track.example.com/go?sub={clickId}&u={userId}"


def make_click(session: Session, user_id: int, offer_id: int, *,
               age: dt.timedelta = dt.timedelta(0)) -> tuple[str, dt.datetime]:
    """A click made ``age`` ago (by the database's clock): (its public id, its created_at)."""
    from common.services.clicks import new_click_id

    public_id = new_click_id()
    created = session.execute(text(
        "INSERT INTO clicks (public_id, user_id, offer_id, created_at) "
        "VALUES (:p, :u, :o, now() - make_interval(secs => :age)) RETURNING created_at"),
        {"p": public_id, "u": user_id, "o": offer_id, "age": age.total_seconds()}).scalar_one()
    return public_id, created
