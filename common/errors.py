"""Domain exceptions: services raise them, the web turns them into the envelope's 4xx."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class BadRequest(DomainError):
    """Malformed: not JSON, a missing header, a query parameter of the wrong type (400)."""


class UnsupportedMediaType(DomainError):
    status, code = 415, "unsupported_media_type"


class InvalidInput(DomainError):
    status, code = 422, "invalid"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class RateLimited(DomainError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, limit: int = 0, reset: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        self.reset = reset


class Unavailable(DomainError):
    status, code = 503, "unavailable"
