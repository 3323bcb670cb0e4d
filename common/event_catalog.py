"""Every frame of the WebSocket protocol, with the model of its ``data``: the one list the AsyncAPI
document (``web/asyncapi.py``, ``GET /api/asyncapi.json``) is generated from.

``emit`` (common/events.py) and the hub's ``encode`` (web/realtime/protocol.py) refuse a name that
is not here, so an event added later is described before it can be sent. Server events travel as
``{"event", "data", "id"?}`` (``id`` on a user's own events, the ``since`` of a resume); client
frames as ``{"event", "data"}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from common.services.notifications import NotificationOut
from common.services.offers import OfferOut
from common.services.risk import RiskFlaggedOut

Audience = Literal["user", "room", "all", "sender", "internal"]


@dataclass(frozen=True)
class Frame:
    name: str
    model: type[BaseModel]
    audience: Audience  # who receives a server event; "internal" never reaches a client
    summary: str


class BalanceUpdated(BaseModel):
    newBalance: Decimal = Field(description="the balance after this ledger entry")
    change: Decimal = Field(description="the entry's signed amount")
    reason: str = Field(description="the entry's kind (sale_credit, payout_hold, adjustment, ...) "
                        "or an adjustment's reason")


class PaymentStatus(BaseModel):
    paymentId: int
    status: Literal["pending", "processing", "paid", "failed", "cancelled"]
    amount: Decimal


class ClaimStatus(BaseModel):
    claimId: int
    status: Literal["approved", "rejected"]
    amount: Decimal | None = Field(description="what the approval credits; null on a rejection")


class OfferNew(BaseModel):
    offer: OfferOut
    category: str


class LeaderboardUpdated(BaseModel):
    leaderboard: Literal["daily", "weekly", "monthly", "all_time"]
    period: str = Field(description="the bucket that changed, e.g. 2026-05-02 or 2026-W18")


class MessageAuthor(BaseModel):
    name: str
    avatar: str | None


class ChatMessage(BaseModel):
    id: int
    roomId: int
    userId: int
    content: str = Field(min_length=1, max_length=2000)
    type: Literal["text", "image", "file"]
    timestamp: dt.datetime
    user: MessageAuthor


class AccountStatus(BaseModel):
    status: Literal["active", "suspended", "banned"]


class AccountRole(BaseModel):
    role: Literal["user", "admin"]


class Ready(BaseModel):
    userId: int


class Refetch(BaseModel):
    reason: Literal["unknown_since", "history_exceeded"]
    lastId: int = Field(description="the newest event id: resume from here after reloading")


class Empty(BaseModel):
    pass


class ErrorFrame(BaseModel):
    message: str
    code: str = Field(description="bad_frame, unknown_event, not_joined, unauthorized, internal, "
                      "or an error envelope's code (invalid, not_found, forbidden, rate_limited)")


class Room(BaseModel):
    roomId: int = Field(ge=1, le=2**63 - 1)


class Auth(BaseModel):
    token: str = Field(description="an access token (or ?token= on the upgrade)")
    since: int | str | None = Field(None, description="the last event id seen: the events after "
                                    "it are replayed")


class ChatSend(Room):
    content: str = Field(min_length=1, max_length=2000)
    type: Literal["text", "image", "file"] = "text"


SERVER: dict[str, Frame] = {f.name: f for f in (
    Frame("ready", Ready, "sender", "Authenticated; the replay of missed events follows"),
    Frame("sync:refetch", Refetch, "sender", "Missed events are no longer all held: reload over "
          "REST, then resume from lastId"),
    Frame("pong", Empty, "sender", "The answer to ping"),
    Frame("error", ErrorFrame, "sender", "A frame the server could not act on"),
    Frame("chat:joined", Room, "sender", "Joined a room: its messages follow"),
    Frame("chat:left", Room, "sender", "Left a room"),
    Frame("chat:message", ChatMessage, "room", "A message in a joined room (the sender's too)"),
    Frame("balance:updated", BalanceUpdated, "user", "A ledger entry changed the balance"),
    Frame("payment:status", PaymentStatus, "user", "A withdrawal changed status"),
    Frame("claim:status", ClaimStatus, "user", "A claim was decided"),
    Frame("notification:new", NotificationOut, "user", "A new notification"),
    Frame("risk:flagged", RiskFlaggedOut, "user", "A member's risk score reached RISK_REVIEW_SCORE "
          "(to every active admin, docs/risk.md)"),
    Frame("offer:new", OfferNew, "all", "An offer became active"),
    Frame("leaderboard:updated", LeaderboardUpdated, "all", "A leaderboard changed"),
    Frame("account:status", AccountStatus, "internal", "Steers the web processes (sockets of a "
          "suspended account close with 4403)"),
    Frame("account:role", AccountRole, "internal", "Steers the web processes"),
)}

CLIENT: dict[str, Frame] = {f.name: f for f in (
    Frame("auth", Auth, "sender", "The first frame, within WS_AUTH_TIMEOUT (unless ?token=)"),
    Frame("ping", Empty, "sender", "Answered with pong"),
    Frame("chat:join", Room, "sender", "Join a room"),
    Frame("chat:leave", Room, "sender", "Leave a room"),
    Frame("chat:send", ChatSend, "sender", "Send a message to a joined room"),
)}


def known(event: str) -> str:
    """``event`` if the catalog describes it as a server event; raises ``ValueError`` otherwise."""
    if event not in SERVER:
        raise ValueError(f"{event} is not in common/event_catalog.py: describe it there first")
    return event
