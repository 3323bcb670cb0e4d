"""Every table, imported here so that ``Base.metadata`` knows the whole schema."""

from common.models.audit import AuditLog
from common.models.auth import RefreshToken
from common.models.outbox import OutboxEvent
from common.models.users import User

__all__ = ["AuditLog", "OutboxEvent", "RefreshToken", "User"]
