"""Every table, imported here so that ``Base.metadata`` knows the whole schema."""

from common.models.analytics import AnalyticsDay, AnalyticsFillState, AnalyticsOfferDay
from common.models.audit import AuditLog
from common.models.auth import RefreshToken
from common.models.chat import ChatMember, ChatMessage, ChatRoom
from common.models.clicks import Claim, Click, ClickWindow
from common.models.ledger import LedgerEntry
from common.models.notifications import Notification
from common.models.offers import Offer
from common.models.outbox import OutboxEvent
from common.models.payments import IdempotencyKey, Payment, SandboxPayout
from common.models.risk import RiskSignal
from common.models.sales import PostbackLog, Sale
from common.models.users import User

__all__ = [
    "AnalyticsDay", "AnalyticsFillState", "AnalyticsOfferDay", "AuditLog", "ChatMember", "ChatMessage", "ChatRoom", "Claim", "Click", "ClickWindow", "IdempotencyKey", "LedgerEntry",
    "Notification", "Offer", "OutboxEvent", "Payment",
    "PostbackLog", "RefreshToken", "RiskSignal", "Sale", "SandboxPayout", "User",
]
