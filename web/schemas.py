"""Request and response models shared by several resources."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Client input: unknown fields are ignored (so ``role`` in a register body changes nothing)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class PageQuery(Model):
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(20, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


# URLs as the document states them and the server checks them (one pattern, both ends): https,
# a host of letters, digits, dots and hyphens, an optional port, then printable ASCII only (no
# space, no control character). ``Model`` strips whitespace around a string before the pattern
# sees it, so the document allows it there too (``^\s*``, ``\s*$``).
_HOST = r"https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?"
HTTPS_URL = rf"^\s*{_HOST}([/?#][\x21-\x7e]*)?\s*$"
# A tracking URL is one with ``{clickId}`` after the host and no macro but ``{clickId}`` and
# ``{userId}`` (common.services.clicks.check_tracking_url says why, in words, on a refusal).
_PLAIN = r"[\x21-\x7a\x7c\x7e]"  # printable ASCII but braces
_MACRO = r"\{(clickId|userId)\}"
TRACKING_URL = rf"^\s*{_HOST}[/?#]({_PLAIN}|{_MACRO})*\{{clickId\}}({_PLAIN}|{_MACRO})*\s*$"


def examples(*values: dict[str, Any], **schema: Any) -> ConfigDict:
    """A body model's ``model_config`` with its examples (the document shows them, and a test
    checks that each is valid and that every request body has one), plus any JSON Schema keyword
    the model's fields cannot state alone (``if``/``then``)."""
    return ConfigDict(json_schema_extra={"examples": list(values), **schema})
