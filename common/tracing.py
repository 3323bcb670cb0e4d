"""The trace id of the current request or task, carried in a context variable.

It is set by the web middleware (from ``X-Trace-ID`` or fresh), copied into Celery task headers,
into outbox events, and into every log line.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)

# A sane incoming id: short, printable, no separators that could forge log or header lines.
_SANE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def new_trace_id() -> str:
    # 32 random hex digits, as ``uuid4().hex`` gave, without building a UUID on every request.
    return os.urandom(16).hex()


def accept_trace_id(incoming: str | None) -> str:
    """Reuse a client's trace id when it is a sane token, otherwise make a new one."""
    if incoming and _SANE.match(incoming):
        return incoming
    return new_trace_id()


def current_trace_id() -> str | None:
    return trace_id_var.get()
