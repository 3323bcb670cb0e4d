"""Response and path models of the money routes (docs/api.md "Operations").

The shapes an event also carries live beside the service that emits it and are imported from
there: ``OfferOut`` (``offer:new``), ``PaymentOut``, ``NotificationOut`` (``notification:new``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from common.services.notifications import NotificationOut
from common.services.offers import OfferOut
from common.services.payments import PaymentOut
from common.wire import Shape

__all__ = ["CategoryCount", "GenericPostbackQuery", "NetworkPath", "NotificationOut", "OfferOut",
           "PaymentOut", "PostbackAck", "ReadAllOut", "ReadOut", "SaleOut"]


class NetworkPath(BaseModel):
    network: str = Field(description="the network's name, lowercased (POSTBACK_*_<NETWORK>)")


class CategoryCount(Shape):
    category: str
    count: int


class SaleOut(Shape):
    id: int
    userId: int
    offerId: int
    offerTitle: str
    externalId: str
    saleAmount: Decimal
    commissionAmount: Decimal
    status: Literal["pending", "approved", "rejected", "reversed"]
    createdAt: dt.datetime
    decidedAt: dt.datetime | None
    clickId: str | None = Field(description="the click the conversion came from, if known")


class GenericPostbackQuery(BaseModel):
    """The generic scheme (docs/money.md "Postbacks"); other schemes use their network's names."""

    user_id: str
    offer_id: str
    txn_id: str
    amount: str
    status: str = Field(description="1/approved/completed = credit, 2/reversed/chargeback = reverse")
    sig: str = Field(description="hex HMAC-SHA256 of the other parameters, sorted, k=v&k=v")
    click_id: str | None = Field(None, description="the click (POST /offers/{id}/click) this "
                                 "conversion came from; must be this user's, for this offer")


class PostbackAck(BaseModel):
    saleId: int | None
    status: str | None


class ReadOut(Shape):
    id: int
    read: bool


class ReadAllOut(Shape):
    updated: int


class ClickCreatedOut(Shape):
    clickId: str = Field(description="opaque, unguessable (128 random bits)")
    url: str = Field(description="the offer's tracking URL with {clickId} and {userId} filled in")
    createdAt: dt.datetime


class ClickOut(Shape):
    clickId: str
    offerId: int
    offerTitle: str
    createdAt: dt.datetime
    saleId: int | None
    saleStatus: Literal["pending", "approved", "rejected", "reversed"] | None
    claimable: bool = Field(description="a claim on this click would be accepted now (no sale, "
                            "no claim, inside the claim window)")


class ClaimOut(Shape):
    id: int
    clickId: str
    offerId: int
    offerTitle: str
    status: Literal["open", "approved", "rejected"]
    message: str
    amount: Decimal | None = Field(description="what the approval credits; null until approved")
    resolution: str | None = Field(description="the reason of a rejection")
    createdAt: dt.datetime
    decidedAt: dt.datetime | None
