"""Admin: offers (list all, create pending, read, update, soft delete, approve, reject)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field

from common.services.admin_offers import (
    admin_create_offer,
    get_offer,
    list_offers,
    set_offer_status,
    update_offer,
)
from web.auth import require_admin
from web.envelope import ok
from web.handlers.admin.base import audit_context, paged
from web.handlers.admin.schemas import AdminOfferOut
from web.ids import IdPath, path_id
from web.keys import DB
from web.openapi import describe
from web.schemas import TRACKING_URL, Model, PageQuery, examples
from web.validation import parse_body, parse_query

TRACKING_URL_DOC = ("the network's https URL a click sends the member to: must contain {clickId}, "
                    "may contain {userId}, no other macro")
Share = Field(None, ge=0, le=1, max_digits=5, decimal_places=4)
Amount = Field(None, ge=0, max_digits=14, decimal_places=2)


class OffersQuery(PageQuery):
    status: Literal["pending", "active", "rejected", "paused"] | None = None


class OfferBody(Model):
    model_config = examples(
        {"title": "Reach level 10", "description": "Install and play", "category": "games",
         "network": "adgate", "externalId": "ag-1042", "payoutType": "share", "userShare": 0.7,
         "networkPayout": 3.2, "trackingUrl": "https://track.example.com/c?sub={clickId}&u={userId}"},
        {"title": "Sign up", "category": "surveys", "network": "cpx", "externalId": "cpx-77",
         "payoutType": "fixed", "fixedPayout": 1.25, "networkPayout": 2},
        # The service refuses a fixed payout without its amount (common.services.admin_offers).
        **{"if": {"required": ["payoutType"], "properties": {"payoutType": {"const": "fixed"}}},
           "then": {"required": ["fixedPayout"], "properties": {"fixedPayout": {"type": "number"}}}},
    )
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    category: str = Field(min_length=1, max_length=64)
    network: str = Field(min_length=1, max_length=64)
    externalId: str = Field(min_length=1, max_length=128)
    payoutType: Literal["share", "fixed"] = "share"
    userShare: Decimal = Field(Decimal("0.7"), ge=0, le=1, max_digits=5, decimal_places=4)
    fixedPayout: Decimal | None = Amount
    networkPayout: Decimal = Field(Decimal(0), ge=0, max_digits=14, decimal_places=2)
    trackingUrl: str | None = Field(None, max_length=2048, pattern=TRACKING_URL,
                                    description=TRACKING_URL_DOC)


class OfferChanges(Model):
    model_config = examples({"title": "Reach level 12", "userShare": 0.75})
    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    category: str | None = Field(None, min_length=1, max_length=64)
    payoutType: Literal["share", "fixed"] | None = None
    userShare: Decimal | None = Share
    fixedPayout: Decimal | None = Amount
    networkPayout: Decimal | None = Amount
    trackingUrl: Annotated[str, Field(max_length=2048, pattern=TRACKING_URL)] | Literal[""] | None = (
        Field(None, description=TRACKING_URL_DOC + "; an empty string removes it"))


class OfferRejectBody(Model):
    model_config = examples({"reason": "tracking URL does not resolve"})
    reason: str = Field(min_length=1, max_length=500)


_COLUMNS = {"externalId": "external_id", "payoutType": "payout_type", "userShare": "user_share",
            "fixedPayout": "fixed_payout", "networkPayout": "network_payout",
            "trackingUrl": "tracking_url"}


def _columns(values: dict[str, object]) -> dict[str, object]:
    return {_COLUMNS.get(k, k): v for k, v in values.items()}


@describe("Every offer, newest first (filter status)", tags=["admin"], query=OffersQuery, response=AdminOfferOut, list=True)
@require_admin
async def offers(request: web.Request) -> web.Response:
    q = parse_query(request, OffersQuery)
    return await paged(request, q, list_offers, AdminOfferOut, status=q.status)


@describe("Create an offer (pending until approved)", tags=["admin"], body=OfferBody, status=201, statuses={409: "network and externalId exist", 422: "Invalid values, e.g. a trackingUrl that is not https or lacks {clickId}"}, response=AdminOfferOut)
@require_admin
async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, OfferBody)
    row = await request.app[DB].run(admin_create_offer, audit=audit_context(request),
                                    **_columns(body.model_dump()))
    return ok(AdminOfferOut.of(row), status=201)


@describe("One offer, any status", tags=["admin"], path=IdPath, statuses={404: "No such offer"}, response=AdminOfferOut)
@require_admin
async def offer(request: web.Request) -> web.Response:
    row = await request.app[DB].run(get_offer, offer_id=path_id(request, "Offer"))
    return ok(AdminOfferOut.of(row))


@describe("Change an offer's fields (payout follows the payout rule)", tags=["admin"], path=IdPath, body=OfferChanges, statuses={404: "No such offer", 422: "Invalid values, e.g. a trackingUrl that is not https or lacks {clickId}"}, response=AdminOfferOut)
@require_admin
async def update(request: web.Request) -> web.Response:
    offer_id = path_id(request, "Offer")  # before the body: an id naming no row is a 404
    body = await parse_body(request, OfferChanges)
    changes = _columns(body.model_dump(exclude_unset=True, exclude_none=True))
    row = await request.app[DB].run(update_offer, offer_id=offer_id, changes=changes,
                                    audit=audit_context(request))
    return ok(AdminOfferOut.of(row))


async def _status(request: web.Request, status: str, reason: str | None = None) -> web.Response:
    row = await request.app[DB].run(set_offer_status, offer_id=path_id(request, "Offer"),
                                    status=status, reason=reason, audit=audit_context(request))
    return ok(AdminOfferOut.of(row))


@describe("Soft-delete an offer: it becomes paused", tags=["admin"], path=IdPath, statuses={404: "No such offer"}, response=AdminOfferOut)
@require_admin
async def delete(request: web.Request) -> web.Response:
    return await _status(request, "paused")


@describe("Approve an offer: active, and offer:new to everyone", tags=["admin"], path=IdPath, statuses={404: "No such offer"}, response=AdminOfferOut)
@require_admin
async def approve(request: web.Request) -> web.Response:
    return await _status(request, "active")


@describe("Reject an offer with a reason", tags=["admin"], path=IdPath, body=OfferRejectBody, statuses={404: "No such offer"}, response=AdminOfferOut)
@require_admin
async def reject(request: web.Request) -> web.Response:
    path_id(request, "Offer")  # before the body: an id naming no row is a 404
    body = await parse_body(request, OfferRejectBody)
    return await _status(request, "rejected", body.reason)


ROUTES = [
    ("GET", "/admin/offers", offers),
    ("POST", "/admin/offers", create),
    ("GET", "/admin/offers/{id:\\d+}", offer),
    ("PUT", "/admin/offers/{id:\\d+}", update),
    ("DELETE", "/admin/offers/{id:\\d+}", delete),
    ("POST", "/admin/offers/{id:\\d+}/approve", approve),
    ("POST", "/admin/offers/{id:\\d+}/reject", reject),
]
