"""Response and path models of the money routes, for the OpenAPI document (API.md sections 3-6)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field


class NetworkPath(BaseModel):
    network: str = Field(description="the network's name, lowercased (POSTBACK_*_<NETWORK>)")


class OfferOut(BaseModel):
    id: int
    title: str
    description: str
    category: str
    network: str
    payout: Decimal = Field(description="what the user earns per completion")
    status: Literal["pending", "active", "rejected", "paused"]
    createdAt: dt.datetime


class CategoryCount(BaseModel):
    category: str
    count: int


class SaleOut(BaseModel):
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
    """The generic scheme (API.md section 4); other schemes use their network's names."""

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


class PaymentOut(BaseModel):
    id: int
    amount: Decimal
    method: Literal["paypal", "crypto", "giftcard"]
    destination: str
    status: Literal["pending", "processing", "paid", "failed", "cancelled"]
    failureReason: str | None
    createdAt: dt.datetime
    updatedAt: dt.datetime


class NotificationOut(BaseModel):
    id: int
    type: str
    title: str
    body: str
    data: dict[str, Any]
    read: bool
    readAt: dt.datetime | None
    createdAt: dt.datetime


class ReadOut(BaseModel):
    id: int
    read: bool


class ReadAllOut(BaseModel):
    updated: int


class ClickCreatedOut(BaseModel):
    clickId: str = Field(description="opaque, unguessable (128 random bits)")
    url: str = Field(description="the offer's tracking URL with {clickId} and {userId} filled in")
    createdAt: dt.datetime


class ClickOut(BaseModel):
    clickId: str
    offerId: int
    offerTitle: str
    createdAt: dt.datetime
    saleId: int | None
    saleStatus: Literal["pending", "approved", "rejected", "reversed"] | None
    claimable: bool = Field(description="a claim on this click would be accepted now (no sale, "
                            "no claim, inside the claim window)")


class ClaimOut(BaseModel):
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
