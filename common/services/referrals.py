"""Referrals (docs/money.md "Referrals", docs/api.md "Referrals"): members bring members and earn a share
of what those earn, through the ledger.

- Each user has a ``referral_code`` (the database's ``new_referral_code()``, migration 0012). A
  sign-up may name one; the relation (``users.referred_by``) is set then and never changes.
- When a referee's sale is approved, the approval statement itself (common/services/sales.py)
  composes ``REFERRAL_CTES``: the referrer's ``referral`` entry, ``REFERRAL_SHARE`` of the
  commission truncated to the cent, goes through the ledger's one posting rule in the same
  statement as the sale's credit, keyed ``referral:<sale id>``. Only while the referee's sign-up
  is less than ``REFERRAL_WINDOW_DAYS`` old, only for a sale's commission (a referral earns
  nothing further), and never when the pair shares a sign-up address or a payout destination:
  such a pair is recorded as the risk signal ``referral_abuse`` instead.
- A reversal of the sale takes the referral back (``referral_reversal:<sale id>``,
  ``reversal_entries``), with the debt rule of every reversal.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, RowMapping, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.effects import resources
from common.errors import InvalidInput, declare_codes
from common.money import to_cents
from common.risk_rules import weights
from common.services.ledger import Entry

ABUSE = "referral_abuse"
declare_codes("unknown_referral_code")
NOTE_TYPE = "referral_earned"


def referral_amount(commission: Decimal, share: Decimal) -> Decimal:
    """What a referrer earns on a commission: the share, truncated to the cent (the one rounding
    rule, ``common.money.to_cents``; the approval statement's ``trunc(..., 2)`` is its SQL form)."""
    return to_cents(commission * share)


def signup_address(ip: str | None) -> str | None:
    """The client address as stored at sign-up: an IP in its canonical form, or None. An
    IPv4-mapped IPv6 address (``::ffff:192.0.2.7``, a dual-stack socket's view of an IPv4 client)
    is stored as the IPv4 address it is, so the same client compares equal either way."""
    try:
        parsed = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.compressed[:64]


_BY_CODE = text("SELECT id, signup_ip FROM users WHERE referral_code = :code")


def referrer_by_code(session: Session, code: str) -> Row[Any]:
    """The referrer's row (``id``, ``signup_ip``) for a code as typed (case and surrounding spaces
    ignored); an unknown code is ``InvalidInput`` (422)."""
    row = session.execute(_BY_CODE, {"code": code.strip().upper()}).first()
    if row is None:
        raise InvalidInput("Unknown referral code", errors=["referralCode: no member has this code"],
                           code="unknown_referral_code")
    return row


# The ``referral_abuse`` signals of the pairs in ``{pairs}`` (columns ``referrer_id``,
# ``referee_id``, ``reason``): one for each member of a pair, once per pair and member (the key),
# weighing ``:referral_abuse_weight`` (``abuse_weight``) in the members' risk scores.
_ABUSE_SIGNALS = f"""
    INSERT INTO risk_signals (user_id, kind, detail, idempotency_key, weight)
    SELECT who.user_id, '{ABUSE}',
           jsonb_build_object('referrerId', p.referrer_id, 'refereeId', p.referee_id,
                              'reason', p.reason),
           '{ABUSE}:' || p.referee_id || ':' || who.user_id,
           CAST(:referral_abuse_weight AS numeric)
    FROM {{pairs}} AS p CROSS JOIN LATERAL (VALUES (p.referee_id, 0), (p.referrer_id, 1))
        AS who(user_id, n)
    ORDER BY p.referee_id, who.n
    ON CONFLICT (idempotency_key) DO NOTHING"""


def abuse_signals(pairs: str) -> str:
    """An INSERT of the ``referral_abuse`` signals of the pairs of CTE ``pairs``."""
    return _ABUSE_SIGNALS.format(pairs=pairs)


_RECORD_ABUSE = text(
    "WITH pair AS (SELECT CAST(:referrer_id AS bigint) AS referrer_id, "
    "CAST(:referee_id AS bigint) AS referee_id, CAST(:reason AS text) AS reason)"
    + abuse_signals("pair")
)


def abuse_weight(settings: Settings) -> dict[str, Decimal]:
    """The ``:referral_abuse_weight`` parameter of the statements that record the signal."""
    return {"referral_abuse_weight": weights(settings.risk_weights)[ABUSE]}


def record_abuse(session: Session, *, referrer_id: int, referee_id: int, reason: str) -> None:
    """Flag a pair to risk (``shared_signup_ip`` or ``shared_payout_destination``)."""
    session.execute(_RECORD_ABUSE, {"referrer_id": referrer_id, "referee_id": referee_id,
                                    "reason": reason, **abuse_weight(resources(session).settings)})


# A withdrawal's destination that the member's referrer or one of their referees already asked
# to be paid to (compared as the approval compares them): the pairs' signals.
_SHARED_DESTINATION = text(
    """
    WITH pair AS (
        SELECT p.referrer_id, p.referee_id, 'shared_payout_destination' AS reason FROM (
            SELECT u.referred_by AS referrer_id, u.id AS referee_id, u.referred_by AS other
            FROM users AS u WHERE u.id = :user_id AND u.referred_by IS NOT NULL
            UNION ALL
            SELECT r.referred_by, r.id, r.id FROM users AS r WHERE r.referred_by = :user_id
        ) AS p
        WHERE EXISTS (SELECT 1 FROM payments
                      WHERE payments.user_id = p.other
                        AND lower(btrim(payments.destination)) = lower(btrim(:destination)))
    )"""
    + abuse_signals("pair")
)


def record_shared_destination(session: Session, *, user_id: int, destination: str) -> None:
    """Call when ``user_id`` asks for a payout to ``destination``: a referral pair that now
    shares it is flagged to risk at once (its later approvals pay no referral)."""
    session.execute(_SHARED_DESTINATION, {"user_id": user_id, "destination": destination,
                                          **abuse_weight(resources(session).settings)})


# Composed by the approval statement after its CTE ``sale`` (the sales it approved: ``id``,
# ``user_id``, ``commission_amount``); parameters ``:referral_share``, ``:referral_window_days``
# and ``:now`` (the application's clock, as every window a test moves).
# - ``referral``: per approved sale of a referee inside the window, the referrer, the amount and
#   whether the pair shares a sign-up address or a payout destination (any payment either asked
#   for, compared without case and surrounding spaces). Joins reach tables through their indexes.
# - ``referral_flagged``: the abusive pairs' risk signals.
# - ``referral_credit``: the entries to post (``seq`` after the sale's own credit, 2 * id).
REFERRAL_CTES = f"""
, referral AS MATERIALIZED (
    SELECT sale.id AS sale_id, referee.id AS referee_id, referee.referred_by AS referrer_id,
           trunc(sale.commission_amount * CAST(:referral_share AS numeric), 2) AS amount,
           coalesce(referee.signup_ip = referrer.signup_ip, false) AS shared_ip,
           EXISTS (SELECT 1 FROM payments AS mine JOIN payments AS theirs
                       ON lower(btrim(theirs.destination)) = lower(btrim(mine.destination))
                   WHERE mine.user_id = referee.id AND theirs.user_id = referrer.id)
               AS shared_destination
    FROM sale
    JOIN users AS referee ON referee.id = sale.user_id
    JOIN users AS referrer ON referrer.id = referee.referred_by
    WHERE sale.commission_amount > 0
      AND CAST(:now AS timestamptz)
          < referee.created_at + make_interval(secs => 86400 * CAST(:referral_window_days AS int))
), referral_flagged AS ({abuse_signals(
    "(SELECT DISTINCT ON (referee_id) referrer_id, referee_id, "
    "CASE WHEN shared_ip THEN 'shared_signup_ip' ELSE 'shared_payout_destination' END AS reason "
    "FROM referral WHERE shared_ip OR shared_destination ORDER BY referee_id)")}
), referral_credit AS (
    SELECT sale_id * 2 + 1 AS seq, referrer_id AS user_id, amount, 'referral' AS kind,
           'sale' AS reference_type, sale_id AS reference_id,
           'referral:' || sale_id AS idempotency_key, false AS allow_debt
    FROM referral WHERE amount > 0 AND NOT shared_ip AND NOT shared_destination
)"""

# One notification per referrer per approval batch, over the posting rule's ``entry`` CTE (what
# was really appended): columns of ``INSERT INTO notifications (user_id, type, title, body, data)``.
REFERRAL_NOTES = f"""
    SELECT user_id, '{NOTE_TYPE}', 'Referral reward',
           sum(amount) || ' added to your balance from your referrals',
           jsonb_build_object('amount', sum(amount), 'sales', count(*))
    FROM entry WHERE kind = 'referral' GROUP BY user_id"""


def approval_params(settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """The parameters ``REFERRAL_CTES`` reads."""
    return {"referral_share": settings.referral_share,
            "referral_window_days": settings.referral_window_days, "now": now,
            **abuse_weight(settings)}


_REFERRAL_OF = text("SELECT user_id, amount FROM ledger_entries WHERE idempotency_key = :key")


def reversal_entries(session: Session, *, sale_id: int) -> list[Entry]:
    """The ``referral_reversal`` of a reversed sale's referral, if it paid one. Like the sale's
    own reversal it may leave the referrer in debt (``allow_debt``)."""
    paid = session.execute(_REFERRAL_OF, {"key": f"referral:{sale_id}"}).first()
    if paid is None:
        return []
    return [Entry(user_id=paid.user_id, amount=-paid.amount, kind="referral_reversal",
                  key=f"referral_reversal:{sale_id}", reference_type="sale", reference_id=sale_id,
                  allow_debt=True)]


# ---------------------------------------------------------------- reads (member and admin)

# A member's code, how many members they referred, and their referral earnings (net of
# reversals): the web's hot read of ``GET /api/referrals`` and part of the admin's user detail.
SUMMARY_SQL = text(
    """
    SELECT u.referral_code,
           (SELECT count(*) FROM users AS r WHERE r.referred_by = u.id) AS referees,
           (SELECT coalesce(sum(l.amount), 0) FROM ledger_entries AS l
            WHERE l.user_id = u.id AND l.kind IN ('referral', 'referral_reversal')) AS earnings
    FROM users AS u WHERE u.id = :user_id
    """
)
# A page of a member's referees, newest first, each with what it earned the member (net of
# reversals: the referral entries of its sales), and the number of referees in every row.
REFEREES_SQL = text(
    """
    WITH page AS (
        SELECT id, name, created_at, count(*) OVER () AS total FROM users
        WHERE referred_by = :user_id ORDER BY id DESC LIMIT :limit OFFSET :offset
    )
    SELECT page.name, page.created_at AS joined_at, page.total,
           coalesce((SELECT sum(l.amount) FROM sales AS s JOIN ledger_entries AS l
                         ON l.idempotency_key IN ('referral:' || s.id, 'referral_reversal:' || s.id)
                     WHERE s.user_id = page.id AND l.user_id = :user_id), 0) AS earned
    FROM page ORDER BY page.id DESC
    """
)
REFEREES_COUNT_SQL = text("SELECT count(*) AS total FROM users WHERE referred_by = :user_id")
_REFERRER = text(
    "SELECT r.id, r.email, r.name FROM users AS u JOIN users AS r ON r.id = u.referred_by "
    "WHERE u.id = :user_id"
)


@dataclass(frozen=True, slots=True)
class Referrals:
    """What an admin sees of a member's referrals."""

    referrer: RowMapping | None  # id, email, name
    referees: int
    earnings: Decimal


def admin_referrals(session: Session, *, user_id: int) -> Referrals:
    summary = session.execute(SUMMARY_SQL, {"user_id": user_id}).mappings().one()
    referrer = session.execute(_REFERRER, {"user_id": user_id}).mappings().first()
    return Referrals(referrer, summary["referees"], summary["earnings"])
