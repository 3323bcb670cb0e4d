"""Request and response models shared by several resources."""

from __future__ import annotations

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
