"""Clicks: a member starting an offer through us (docs/money.md "Clicks").

A click's public id is 128 random bits (``secrets.token_urlsafe(16)``), never a sequence, so it
can travel in the network's tracking URL without letting anyone guess another member's click. The
web records a click in ONE statement on its autocommit pool (``CLICK``: the insert is conditional
on the offer being active and having a tracking URL, and the same statement answers why not),
and fills the offer's tracking URL with it (``tracking_link``).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import urllib.parse
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.errors import InvalidInput, RateLimited
from common.ratelimit import SpentWindows, limit_item, refusal
from common.services.risk_signals import CLICK_RISK_CTE
from common.wire_sql import ISO_FORMAT

_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{22}")
MACROS = ("{clickId}", "{userId}")
_BRACES = re.compile(r"\{[^{}]*\}|[{}]")
MAX_TRACKING_URL = 2048


def new_click_id() -> str:
    return secrets.token_urlsafe(16)


def is_click_id(raw: str) -> bool:
    """Whether ``raw`` has the shape of a click id (anything else names no click)."""
    return _PUBLIC_ID.fullmatch(raw) is not None


def check_tracking_url(url: str) -> str:
    """``url`` if it can be a tracking URL: https, a host, no whitespace or control characters,
    ``{clickId}`` present, and no macro but ``{clickId}`` and ``{userId}`` (a typo such as
    ``{clickid}`` would otherwise reach the network unfilled). Raises ``InvalidInput``."""
    problems = []
    if "{clickId}" not in url:
        problems.append("trackingUrl: must contain the {clickId} macro")
    unknown = sorted({m for m in _BRACES.findall(url) if m not in MACROS})
    if unknown:
        problems.append(f"trackingUrl: unknown macros {', '.join(unknown)} (only {{clickId}}, {{userId}})")
    sample = _fill(url, "x" * 22, 1)
    if len(url) > MAX_TRACKING_URL or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        problems.append(f"trackingUrl: at most {MAX_TRACKING_URL} characters, no spaces or control characters")
    else:
        try:
            parts = urllib.parse.urlsplit(sample)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme != "https" or not host:
            problems.append("trackingUrl: must be an https URL with a host")
    if problems:
        raise InvalidInput("Invalid tracking URL", errors=problems)
    return url


def tracking_link(url: str, *, click_id: str, user_id: int) -> str:
    """The tracking URL with its macros filled, each value URL-encoded."""
    return _fill(url, click_id, user_id)


def _fill(url: str, click_id: str, user_id: int) -> str:
    return (url.replace("{clickId}", urllib.parse.quote(click_id, safe=""))
            .replace("{userId}", urllib.parse.quote(str(user_id), safe="")))


# The 201's data, ``ClickCreatedOut`` as ``web.envelope.dumps`` writes it, by PostgreSQL (as
# ``common.wire_sql`` writes a shape): ``to_json`` escapes text as orjson does, the instant is
# ``iso``, and the URL is ``tracking_link``'s: the macros replaced in the same order, with values
# that URL-encoding leaves as they are (a click id's 22 URL-safe characters, a user id's digits).
# NULL when no click was stored. tests/web/handlers/test_clicks.py compares it byte for byte.
_ANSWER = f"""(
        '{{"clickId":' || to_json(click.public_id)::text
        || ',"url":' || to_json(replace(replace(offer.tracking_url, '{{clickId}}', click.public_id),
                                         '{{userId}}', CAST(:user_id AS bigint)::text))::text
        || ',"createdAt":"' || to_char(timezone('UTC', click.created_at), {ISO_FORMAT}) || '"}}')"""

# One round trip: the member's click limit counted, the offer's state, and the click inserted
# only when the limit took it and the offer is active and has a tracking URL. Always one row;
# ``counted`` false: the limit is spent (nothing stored); no offer status: no such offer.
#
# The limit is the ``limits`` library's moving window (common/ratelimit.py), kept in the member's
# ``click_windows`` row instead of Redis: the stamps of the latest ``limit`` clicks, newest first;
# spent while the oldest of them is still inside the window. Every attempt is counted, whatever
# the offer, as the Redis limiter counted every request. The upsert waits for a concurrent click
# of the same member and then re-checks the row as that click committed it, so concurrent clicks
# through any number of web instances can never pass the limit together.
CLICK = text(
    """
    WITH offer AS (
        SELECT id, status, tracking_url FROM offers WHERE id = :offer_id
    ), counted AS (
        INSERT INTO click_windows AS w (user_id, stamps)
        SELECT CAST(:user_id AS bigint), ARRAY[CAST(:now AS timestamptz)]
        WHERE CAST(:limit AS integer) > 0
        ON CONFLICT (user_id) DO UPDATE
        SET stamps = (ARRAY[CAST(:now AS timestamptz)] || w.stamps)[1:CAST(:limit AS integer)]
        WHERE cardinality(w.stamps) < CAST(:limit AS integer)
           OR w.stamps[CAST(:limit AS integer)]
              < CAST(:now AS timestamptz) - make_interval(secs => CAST(:window AS double precision))
        RETURNING w.user_id
    ), click AS (
        INSERT INTO clicks (public_id, user_id, offer_id, ip, user_agent)
        SELECT :public_id, :user_id, offer.id, :ip, :user_agent FROM offer, counted
        WHERE offer.status = 'active' AND offer.tracking_url IS NOT NULL
        RETURNING public_id, created_at
    )""" + CLICK_RISK_CTE + """
    SELECT offer.status, offer.tracking_url, click.public_id, click.created_at,
           EXISTS (SELECT FROM counted) AS counted, """ + _ANSWER + """ AS answer
    FROM (VALUES (1)) AS one (x) LEFT JOIN offer ON true LEFT JOIN click ON true
    """
)

# Read only once the limit refused a click: when its oldest stamp leaves the window.
OLDEST_STAMP = text(
    "SELECT extract(epoch FROM stamps[CAST(:limit AS integer)]) AS oldest "
    "FROM click_windows WHERE user_id = :user_id"
)


def click_limit_params(limit: str, now: dt.datetime) -> dict[str, Any]:
    """The parameters of ``CLICK``'s limit: ``now`` stamps the click (the app's clock, as the
    Redis limiter's stamps were, so tests move it with freezegun)."""
    item = limit_item(limit)
    return {"now": now, "limit": item.amount, "window": float(item.get_expiry())}


def click_refusal(spent: SpentWindows, limit: str, user_id: int, oldest: Decimal | float | None,
                  now: dt.datetime) -> RateLimited:
    """The 429 of a spent click limit, with the wait until its oldest stamp (``OLDEST_STAMP``)
    leaves the window; remembered in ``spent`` until then, so that the member's next clicks are
    refused without a statement (``known_refusal``)."""
    item, oldest_s = limit_item(limit), None if oldest is None else float(oldest)
    spent.remember(user_id, oldest_s, item, now.timestamp())
    return refusal(item, oldest_s, now.timestamp())


def known_refusal(spent: SpentWindows, limit: str, user_id: int, now: dt.datetime) -> RateLimited | None:
    """The 429 of a click limit this process knows to be spent at ``now``, else None."""
    return spent.refusal(limit_item(limit), user_id, now.timestamp())


# Clicks past retention that nothing names, oldest first, a bounded batch per statement (a run
# that stops half way leaves only whole batches done; the next run goes on). The hour of grace
# keeps the purge off clicks a postback may be attributing at the very edge of retention.
_PURGE = text(
    """
    DELETE FROM clicks WHERE id IN (
        SELECT c.id FROM clicks c
        WHERE c.created_at < now() - make_interval(days => :days) - interval '1 hour'
          AND NOT EXISTS (SELECT 1 FROM sales s WHERE s.click_id = c.public_id)
          AND NOT EXISTS (SELECT 1 FROM claims cl WHERE cl.click_id = c.public_id)
        ORDER BY c.created_at LIMIT :batch FOR UPDATE SKIP LOCKED
    )
    """
)


def purge_expired_clicks(session: Session, *, days: int, batch: int = 1000) -> int:
    """Delete up to ``batch`` clicks older than ``days`` that no sale or claim names; returns how
    many. Call once per transaction; concurrent purges skip each other's rows."""
    result: Any = session.execute(_PURGE, {"days": days, "batch": batch})
    return int(result.rowcount)
