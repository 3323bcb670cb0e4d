"""Offers: creating them (admin, seed) and the catalogue reads."""

from __future__ import annotations

from decimal import Decimal
from sqlalchemy import insert
from sqlalchemy.orm import Session

from common.models.offers import Offer
from common.money import commission

_offers = Offer.__table__


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
    return session.execute(
        insert(_offers)
        .values(
            title=title, description=description, category=category, network=network,
            external_id=external_id, status=status, payout_type=payout_type,
            user_share=user_share, fixed_payout=fixed_payout, network_payout=network_payout,
            payout=payout, tracking_url=tracking_url,
        )
        .returning(_offers.c.id)
    ).scalar_one()

