"""Risk signals (docs/risk.md, API.md section 13), recorded where their fact happens, in the
transaction that makes the fact.

Each signal has an idempotency key naming its fact, so a retry, a replayed postback or a second
look at the same fact records nothing new (``ON CONFLICT DO NOTHING``). Its weight (RISK_WEIGHTS
at the time) is added to the member's score by migration 0013's trigger, in the same statement;
a signal recorded here tells admins at once when the score reaches RISK_REVIEW_SCORE
(``common.services.risk.announce_flagged``); a signal the hot paths record inside their own
statement (``CREDIT_RISK_CTES``, ``CLICK_RISK_CTE``) is announced by the beat's ``risk.flag``.
With RISK_ENABLED=false nothing is recorded.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from common.config import Settings
from common.effects import resources
from common.risk_rules import (
    FAST_CONVERSION,
    LISTED_IP,
    POSTBACK_VELOCITY,
    REVERSAL_RATE,
    SHARED_PAYOUT_DESTINATION,
    SHARED_SIGNUP_IP,
    blocked_networks,
    weights,
)
from common.services.referrals import signup_address
from common.services.risk import announce_flagged


def weight(settings: Settings, kind: str) -> Decimal:
    return weights(settings.risk_weights)[kind]


_RECORD = text(
    """
    INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
    VALUES (:user_id, :kind, :detail, :key, :weight)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING user_id
    """
).bindparams(bindparam("detail", type_=JSONB))


def record_signal(session: Session, *, user_id: int, kind: str, detail: dict[str, Any],
                  key: str) -> bool:
    """Record one signal unless its fact (``key``) was recorded; True when it was new."""
    settings = resources(session).settings
    if not settings.risk_enabled:
        return False
    new = session.execute(_RECORD, {"user_id": user_id, "kind": kind, "detail": detail,
                                    "key": key[:128], "weight": weight(settings, kind)}).first()
    if new is not None:
        announce_flagged(session, user_ids=[user_id])
    return new is not None


def record_listed_ip(session: Session, *, user_id: int, ip: str | None, seen_at: str) -> bool:
    """``listed_ip`` when ``ip`` is inside RISK_BLOCKED_CIDRS (a dictionary lookup per prefix
    length, no query unless it is): once per member and address; ``seen_at`` says where
    (``signup``, ``login``, ``click``, ``withdrawal``)."""
    settings = resources(session).settings
    ip = signup_address(ip)  # the key names the address, not how a socket spelled it
    network = blocked_networks(settings.risk_blocked_cidrs).match(ip) if settings.risk_enabled else None
    if network is None:
        return False
    return record_signal(session, user_id=user_id, kind=LISTED_IP,
                         detail={"ip": ip, "network": network, "seenAt": seen_at},
                         key=f"{LISTED_IP}:{user_id}:{ip}")


# Every account signed up from ``:ip`` in the last 24 hours (this sign-up's included: it is in
# this transaction), once RISK_SHARED_IP_ACCOUNTS of them exist: a signal for each, once per
# account (its sign-up address never changes). Bounded: a carrier's NAT address could gather many.
_SHARED_SIGNUP_IP = text(
    f"""
    WITH peers AS MATERIALIZED (
        SELECT id FROM users
        WHERE signup_ip = :ip AND created_at > now() - interval '24 hours'
        ORDER BY id DESC LIMIT 1000
    ), total AS (SELECT count(*) AS n FROM peers)
    INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
    SELECT peers.id, '{SHARED_SIGNUP_IP}', jsonb_build_object('ip', CAST(:ip AS text),
           'accounts', total.n), '{SHARED_SIGNUP_IP}:' || peers.id, CAST(:weight AS numeric)
    FROM peers, total WHERE total.n >= :accounts
    ORDER BY peers.id
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING user_id
    """
)


def record_signup(session: Session, *, user_id: int, address: str | None) -> None:
    """A member signed up from ``address`` (canonical, ``referrals.signup_address``)."""
    settings = resources(session).settings
    if not settings.risk_enabled or address is None:
        return
    record_listed_ip(session, user_id=user_id, ip=address, seen_at="signup")
    flagged = session.execute(_SHARED_SIGNUP_IP, {
        "ip": address, "accounts": settings.risk_shared_ip_accounts,
        "weight": weight(settings, SHARED_SIGNUP_IP)}).scalars().all()
    announce_flagged(session, user_ids=flagged)


# A destination other members asked to be paid to (compared folded, as referrals compare them),
# looking only at those who named it before the requester first did (by payment id, the order
# the requests were accepted in):
# - the requester gets one signal per such member (once per pair): the later accounts of a farm
#   add up;
# - each such member gets one signal per destination, however many accounts name it after them:
#   a payout address is no secret, and anyone could otherwise type a member's address into a few
#   accounts of their own to push that member's withdrawals into review (the signal never
#   decays). The member who named it first is not linked again when they use it again later.
_SHARED_DESTINATION = text(
    f"""
    WITH peers AS (
        SELECT user_id, min(id) AS first_id FROM payments
        WHERE lower(btrim(destination)) = lower(btrim(:destination)) AND user_id <> :user_id
        GROUP BY user_id ORDER BY min(id) LIMIT 100
    ), mine AS (
        SELECT min(id) AS first_id FROM payments
        WHERE user_id = :user_id AND lower(btrim(destination)) = lower(btrim(:destination))
    ), before AS (
        SELECT peers.user_id FROM peers, mine
        WHERE mine.first_id IS NULL OR peers.first_id < mine.first_id
    ), linked AS (
        SELECT CAST(:user_id AS bigint) AS who, user_id AS peer,
               '{SHARED_PAYOUT_DESTINATION}:' || :user_id || ':' || user_id AS key
        FROM before
        UNION ALL
        SELECT user_id, CAST(:user_id AS bigint),
               '{SHARED_PAYOUT_DESTINATION}:' || user_id || ':named:'
                   || md5(lower(btrim(:destination)))
        FROM before
    )
    INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
    SELECT who, '{SHARED_PAYOUT_DESTINATION}',
           jsonb_build_object('otherUserId', peer, 'destination', CAST(:destination AS text)),
           key, CAST(:weight AS numeric)
    FROM linked
    ORDER BY who, peer
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING user_id
    """
)


# Withdrawals naming one destination (folded) take turns until they commit: without it, accounts
# asking at the same moment each miss the other's uncommitted payment and none is flagged (a farm
# firing every account's withdrawal at once). A statement of its own: the comparison after it
# needs a snapshot taken once the lock is held. Withdrawals to other destinations never wait.
_DESTINATION_TURN = text(
    "SELECT pg_advisory_xact_lock(hashtext('shared_payout_destination'), "
    "hashtext(lower(btrim(:destination))))")


def record_withdrawal(session: Session, *, user_id: int, destination: str,
                      ip: str | None) -> None:
    """A member asks for a payout to ``destination`` from ``ip``. Call before deciding whether
    the withdrawal needs a review, so that what it reveals counts for it."""
    settings = resources(session).settings
    if not settings.risk_enabled:
        return
    # First, before any signal locks a member's row: the turn is always taken before row locks.
    session.execute(_DESTINATION_TURN, {"destination": destination})
    record_listed_ip(session, user_id=user_id, ip=ip, seen_at="withdrawal")
    flagged = session.execute(_SHARED_DESTINATION, {
        "user_id": user_id, "destination": destination,
        "weight": weight(settings, SHARED_PAYOUT_DESTINATION)}).scalars().all()
    announce_flagged(session, user_ids=flagged)


# After a network took ``:sale_id`` back: its member's sales made in the window (the
# application's clock, ``:now``), and how many of them were taken back (rejected or reversed).
# One signal per member per window-long period (``:period``) while the share stays over the rate.
_REVERSAL_RATE = text(
    f"""
    WITH owner AS (SELECT user_id FROM sales WHERE id = :sale_id), counted AS (
        SELECT owner.user_id, count(*) AS sales,
               count(*) FILTER (WHERE s.status IN ('rejected', 'reversed')) AS taken_back
        FROM owner JOIN sales s ON s.user_id = owner.user_id
        WHERE s.created_at > CAST(:now AS timestamptz) - make_interval(days => :days)
        GROUP BY owner.user_id
    )
    INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
    SELECT user_id, '{REVERSAL_RATE}',
           jsonb_build_object('sales', sales, 'reversed', taken_back,
                              'windowDays', CAST(:days AS int)),
           '{REVERSAL_RATE}:' || user_id || ':' || CAST(:period AS text), CAST(:weight AS numeric)
    FROM counted WHERE sales >= :min_sales AND taken_back >= sales * CAST(:rate AS numeric)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING user_id
    """
)


def record_reversal(session: Session, *, sale_id: int) -> None:
    """A network took ``sale_id`` back: ``reversal_rate`` when its member's share of sales taken
    back over RISK_REVERSAL_WINDOW_DAYS reached RISK_REVERSAL_RATE."""
    settings = resources(session).settings
    if not settings.risk_enabled:
        return
    now = dt.datetime.now(dt.UTC)
    days = settings.risk_reversal_window_days
    flagged = session.execute(_REVERSAL_RATE, {
        "sale_id": sale_id, "now": now, "days": days, "period": int(now.timestamp()) // (days * 86_400),
        "min_sales": settings.risk_reversal_min_sales, "rate": settings.risk_reversal_rate,
        "weight": weight(settings, REVERSAL_RATE)}).scalars().all()
    announce_flagged(session, user_ids=flagged)


# Composed by the credit statement (common/services/sales.py ``CREDIT_CTES``) after its CTE
# ``sale`` (the sale it inserted, if any): no extra round trip, and nothing at all is read unless
# a sale was inserted and the rule is on.
# - ``fast_conversion``: the click the credit names was made less than
#   RISK_FAST_CONVERSION_SECONDS before (a real completion takes longer than a bot's).
# - ``postback_velocity``: the member's sale RISK_POSTBACK_VELOCITY places before this one was
#   made within the hour (the (user_id, id) index reads that many rows at most): more credited
#   conversions in an hour than the setting. Once per member and clock hour.
CREDIT_RISK_CTES = f"""
    , risk_fast AS (
        INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
        SELECT sale.user_id, '{FAST_CONVERSION}',
               jsonb_build_object('saleId', sale.id, 'clickId', c.public_id,
                                  'seconds', round(extract(epoch FROM now() - c.created_at), 3)),
               '{FAST_CONVERSION}:' || sale.id, CAST(:risk_fast_weight AS numeric)
        FROM sale JOIN clicks c ON c.public_id = CAST(:click_id AS varchar)
        WHERE CAST(:risk_enabled AS boolean)
          AND now() - c.created_at < make_interval(secs => CAST(:risk_fast_seconds AS int))
        ON CONFLICT (idempotency_key) DO NOTHING
    ), risk_velocity AS (
        INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
        SELECT sale.user_id, '{POSTBACK_VELOCITY}',
               jsonb_build_object('saleId', sale.id,
                                  'perHour', CAST(:risk_velocity AS int)),
               '{POSTBACK_VELOCITY}:' || sale.user_id || ':'
                   || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24'),
               CAST(:risk_velocity_weight AS numeric)
        FROM sale
        WHERE CAST(:risk_enabled AS boolean) AND (
            SELECT s.created_at FROM sales s WHERE s.user_id = sale.user_id AND s.id < sale.id
            ORDER BY s.id DESC OFFSET CAST(:risk_velocity AS int) - 1 LIMIT 1
        ) > now() - interval '1 hour'
        ON CONFLICT (idempotency_key) DO NOTHING
    )"""


def credit_risk_params(settings: Settings) -> dict[str, Any]:
    """The parameters ``CREDIT_RISK_CTES`` reads."""
    return {"risk_enabled": settings.risk_enabled,
            "risk_fast_seconds": settings.risk_fast_conversion_seconds,
            "risk_fast_weight": weight(settings, FAST_CONVERSION),
            "risk_velocity": settings.risk_postback_velocity,
            "risk_velocity_weight": weight(settings, POSTBACK_VELOCITY)}


# Composed by the click statement (common/services/clicks.py ``CLICK``) after its CTE ``click``:
# the web decided in Python (``click_listed``) whether the address is listed; only then is a
# signal written, in the same statement.
CLICK_RISK_CTE = f"""
    , risk_listed AS (
        INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
        SELECT CAST(:user_id AS bigint), '{LISTED_IP}',
               jsonb_build_object('ip', CAST(:risk_ip AS text),
                                  'network', CAST(:risk_listed AS text), 'seenAt', 'click'),
               '{LISTED_IP}:' || CAST(:user_id AS bigint) || ':' || CAST(:risk_ip AS text),
               CAST(:risk_listed_weight AS numeric)
        FROM click WHERE CAST(:risk_listed AS text) IS NOT NULL
        ON CONFLICT (idempotency_key) DO NOTHING
    )"""


def click_risk_params(settings: Settings, ip: str | None) -> dict[str, Any]:
    """The parameters ``CLICK_RISK_CTE`` reads: the listed network holding ``ip``, or None; and
    the address in the canonical form that sign-ins and withdrawals key the signal with (an
    IPv4-mapped address is its IPv4 address), canonicalised only when it is listed."""
    listed = blocked_networks(settings.risk_blocked_cidrs).match(ip) if settings.risk_enabled else None
    return {"risk_listed": listed, "risk_listed_weight": weight(settings, LISTED_IP),
            "risk_ip": signup_address(ip) if listed is not None else None}
