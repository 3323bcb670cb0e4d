"""Offers: creating them (admin, seed), and the public offer's shape (``offer:new`` carries it)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field
from sqlalchemy import insert
from sqlalchemy.orm import Session

from common.models.offers import Offer
from common.money import commission
from common.wire import Shape

_offers = Offer.__table__


class OfferOut(Shape):
    id: int
    title: str
    description: str
    category: str
    network: str
    payout: Decimal = Field(description="what the user earns per completion")
    status: Literal["pending", "active", "rejected", "paused"]
    createdAt: dt.datetime


def create_offer(
    session: Session,
    *,
    title: str,
    category: str,
    network: str,
    external_id: str,
    description: str = "",
    status: str = "pending",
    payout_type: str = "share",
    user_share: Decimal = Decimal("0.7"),
    fixed_payout: Decimal | None = None,
    network_payout: Decimal = Decimal(0),
    tracking_url: str | None = None,
) -> int:
    """Insert an offer; ``payout`` (what the catalogue shows) follows the payout rule."""
    payout = commission(
        payout_type=payout_type, user_share=Decimal(user_share), fixed_payout=fixed_payout,
        network_amount=Decimal(network_payout),
    )
    offer_id: int = session.execute(
        insert(_offers)
        .values(
            title=title, description=description, category=category, network=network,
            external_id=external_id, status=status, payout_type=payout_type,
            user_share=user_share, fixed_payout=fixed_payout, network_payout=network_payout,
            payout=payout, tracking_url=tracking_url,
        )
        .returning(_offers.c.id)
    ).scalar_one()
    return offer_id

