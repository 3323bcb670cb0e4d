"""Domain exceptions: services raise them, the web turns them into the envelope's 4xx."""

from __future__ import annotations

CODES: set[str] = set()
"""Every ``code`` an error envelope may carry: each class's, and those ``declare_codes`` names
(the OpenAPI document lists them as an enum, and answers are checked against it)."""


def declare_codes(*codes: str) -> tuple[str, ...]:
    """Codes raised per instance (``ClaimRefused(code, ...)``), declared where they are defined."""
    CODES.update(codes)
    return codes


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        CODES.add(cls.code)

    def __init__(self, message: str, *, errors: list[str] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        if code is not None:  # a reason a program can act on, declared with ``declare_codes``
            assert code in CODES, code
            self.code = code


class BadRequest(DomainError):
    """Malformed: not JSON, a missing header, a query parameter of the wrong type (400)."""


CODES.add(DomainError.code)


class UnsupportedMediaType(DomainError):
    status, code = 415, "unsupported_media_type"


class InvalidInput(DomainError):
    """422. ``invalid`` (the default code) means the request breaks the OpenAPI document's
    schema; a refusal by a rule the schema cannot state (a balance, a minimum set in the
    configuration, another row's state) carries a code of its own (docs/api.md "Errors")."""

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
