"""Risk scores and what admins do about them (docs/risk.md, API.md section 13).

- A member's ``risk_score`` is the sum of the weights of their signals that still count: recorded
  since the member's last clearing, and, for the kinds that decay (``risk_rules.DECAYING``), less
  than RISK_DECAY_DAYS old. Migration 0013's trigger adds each new signal's weight as it is
  recorded (the incremental score); ``rebuild_scores`` (beat ``risk.rebuild``) writes the absolute
  value from the signals, which drops what decayed and applies changed weights. With unchanged
  weights and nothing decayed the two agree (tests/common/services/test_risk_score.py).
- ``risk:flagged`` tells every admin's sockets once a member's score reaches RISK_REVIEW_SCORE
  (``risk_flagged`` remembers it was said; it is said again after the score fell below and rose).
- Admins clear a score (history kept), and freeze or unfreeze a member's withdrawals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import RowMapping, text
from sqlalchemy.orm import Session

from common.effects import resources
from common.errors import NotFound
from common.events import emit
from common.risk_rules import DECAYING, weights
from common.services.audit import record_audit
from common.services.payment_review import hold_pending_for_review
from common.wire import Shape

FLAGGED_EVENT = "risk:flagged"
# How many signals the review queue and a user's detail show per member (newest first).
SIGNALS_SHOWN = 50


class RiskFlaggedOut(Shape):
    """``risk:flagged``: a member's score reached RISK_REVIEW_SCORE (to every admin)."""

    userId: int
    name: str
    score: Decimal


_FLAG = text(
    """
    UPDATE users SET risk_flagged = true
    WHERE id = ANY(:ids) AND NOT risk_flagged AND risk_score >= :review
    RETURNING id AS user_id, name, risk_score AS score
    """
)
_FLAG_ALL = text(
    """
    UPDATE users SET risk_flagged = true
    WHERE risk_score > 0 AND risk_score >= :review AND NOT risk_flagged
    RETURNING id AS user_id, name, risk_score AS score
    """
)
_ADMINS = text("SELECT id FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id")


def _tell_admins(session: Session, flagged: Sequence[RowMapping]) -> None:
    if not flagged:
        return
    admins = session.execute(_ADMINS).scalars().all()
    for row in flagged:
        data = {**RiskFlaggedOut.of(row), "score": float(row["score"])}
        for admin_id in admins:
            emit(session, event=FLAGGED_EVENT, data=data, user_id=admin_id)


def announce_flagged(session: Session, *, user_ids: Sequence[int]) -> None:
    """Tell admins about those of ``user_ids`` whose score just reached RISK_REVIEW_SCORE."""
    if not user_ids:
        return
    review = resources(session).settings.risk_review_score
    _tell_admins(session, session.execute(_FLAG, {"ids": list(set(user_ids)),
                                                  "review": review}).mappings().all())


def flag_crossed(session: Session) -> int:
    """The beat's sweep (``risk.flag``): announce every member whose score reached the threshold
    unannounced (the hot paths record signals inside their own statements and leave this to it).
    A score that falls below (decay, a clearing) forgets its announcement where it falls.
    Returns how many were announced."""
    review = resources(session).settings.risk_review_score
    flagged = session.execute(_FLAG_ALL, {"review": review}).mappings().all()
    _tell_admins(session, flagged)
    return len(flagged)


# The members a rebuild looks at, a batch of ids after ``:after``: those with a signal (a score
# comes only from signals), found through the signals' (user_id, created_at) index, never by
# reading every member. NO KEY UPDATE, the lock a signal's trigger takes to add its weight (which
# is what must wait): FOR UPDATE would also stall, for the whole batch, every click, payment or
# other insert whose foreign key names one of these members (they take KEY SHARE).
_BATCH = text(
    """
    SELECT id FROM users WHERE id IN (
        SELECT DISTINCT user_id FROM risk_signals WHERE user_id > :after
        ORDER BY user_id LIMIT :limit)
    ORDER BY id FOR NO KEY UPDATE
    """
)
# The absolute scores of ``:ids`` from their signals with today's weights (``:weights``, a JSON
# object by kind) and the application's clock (``:now``, so that tests can move it).
_REBUILD = text(
    """
    WITH w AS (SELECT key AS kind, CAST(value AS numeric) AS weight
               FROM jsonb_each_text(CAST(:weights AS jsonb))),
    scored AS (
        SELECT u.id, coalesce(sum(w.weight) FILTER (
                   WHERE (u.risk_cleared_at IS NULL OR s.created_at >= u.risk_cleared_at)
                     AND (s.kind <> ALL(CAST(:decaying AS text[]))
                          OR s.created_at > CAST(:now AS timestamptz)
                                            - make_interval(days => :decay_days))), 0) AS score
        FROM users u
        LEFT JOIN risk_signals s ON s.user_id = u.id
        LEFT JOIN w ON w.kind = s.kind
        WHERE u.id = ANY(:ids)
        GROUP BY u.id
    )
    UPDATE users SET risk_score = scored.score,
                     risk_flagged = users.risk_flagged AND scored.score >= :review
    FROM scored
    WHERE users.id = scored.id AND users.risk_score <> scored.score
    RETURNING users.id
    """
)


def score_params(now: dt.datetime | None = None) -> dict[str, Any]:
    return {"now": now or dt.datetime.now(dt.UTC), "decaying": sorted(DECAYING)}


def rebuild_scores(session: Session, *, after: int = 0, limit: int = 500,
                   now: dt.datetime | None = None) -> tuple[int, int | None]:
    """Rebuild the scores of one batch of members after id ``after``: (how many changed, the
    last id of the batch or None when there was none). The batch's rows are locked first, and
    the scores computed by the next statement (a fresh snapshot in READ COMMITTED): a signal
    committed before the lock is counted; one committing later waits for the lock and then adds
    its weight to the rebuilt score, so no signal is lost or counted twice."""
    settings = resources(session).settings
    ids = session.execute(_BATCH, {"after": after, "limit": limit}).scalars().all()
    if not ids:
        return 0, None
    params = {**score_params(now), "ids": list(ids), "decay_days": settings.risk_decay_days,
              "review": settings.risk_review_score,
              "weights": orjson.dumps({k: str(v) for k, v in
                                       weights(settings.risk_weights).items()}).decode()}
    changed = session.execute(_REBUILD, params).scalars().all()
    return len(changed), ids[-1]


# The clock's time, not the transaction's start: every signal recorded before the clearing (each
# stamped with its own transaction's start) is older, even one recorded in this transaction.
_CLEAR = text(
    """
    UPDATE users SET risk_score = 0, risk_cleared_at = clock_timestamp(), risk_flagged = false
    WHERE id = :user_id RETURNING id, risk_score
    """
)
_SCORE = text("SELECT risk_score, payouts_frozen FROM users WHERE id = :user_id FOR UPDATE")


def _locked_score(session: Session, user_id: int) -> RowMapping:
    row = session.execute(_SCORE, {"user_id": user_id}).mappings().first()
    if row is None:
        raise NotFound("User not found")
    return row


def clear_risk(session: Session, *, user_id: int, reason: str,
               audit: dict[str, Any]) -> dict[str, Any]:
    """An admin cleared the member: the score is 0 and the signals recorded so far no longer
    count (they stay, as history); audited."""
    before = _locked_score(session, user_id)
    session.execute(_CLEAR, {"user_id": user_id})
    record_audit(session, action="user.risk_clear", target_type="user", target_id=user_id,
                 before={"riskScore": str(before["risk_score"])},
                 after={"riskScore": "0", "reason": reason}, **audit)
    return user_risk(session, user_id=user_id)


_FREEZE = text("UPDATE users SET payouts_frozen = :frozen WHERE id = :user_id")


def set_payouts_frozen(session: Session, *, user_id: int, frozen: bool, reason: str,
                       audit: dict[str, Any]) -> bool:
    """Freeze or unfreeze the member's withdrawals (a new withdrawal then gets 403; the ones
    already accepted, approved or not, wait for an admin to approve or reject them:
    ``hold_pending_for_review``); audited. Returns the new state."""
    before = _locked_score(session, user_id)
    session.execute(_FREEZE, {"user_id": user_id, "frozen": frozen})
    if frozen and not before["payouts_frozen"]:
        hold_pending_for_review(session, user_id=user_id, because="payouts_frozen", audit=audit)
    record_audit(session, action="user.payouts_frozen", target_type="user", target_id=user_id,
                 before={"payoutsFrozen": before["payouts_frozen"]},
                 after={"payoutsFrozen": frozen, "reason": reason}, **audit)
    return frozen


_SIGNALS = text(
    """
    SELECT s.user_id, s.id, s.kind, s.detail, s.weight, s.created_at,
           (u.risk_cleared_at IS NULL OR s.created_at >= u.risk_cleared_at) AS counts
    FROM unnest(CAST(:ids AS bigint[])) AS t(user_id)
    JOIN users u ON u.id = t.user_id
    CROSS JOIN LATERAL (SELECT * FROM risk_signals WHERE user_id = t.user_id
                        ORDER BY id DESC LIMIT :shown) AS s
    ORDER BY s.user_id, s.id DESC
    """
)


def signals_of(session: Session, user_ids: Sequence[int]) -> dict[int, list[RowMapping]]:
    """The newest SIGNALS_SHOWN signals of each member, newest first."""
    found: dict[int, list[RowMapping]] = {user_id: [] for user_id in user_ids}
    rows = session.execute(_SIGNALS, {"ids": list(user_ids), "shown": SIGNALS_SHOWN}).mappings()
    for row in rows:
        found[row["user_id"]].append(row)
    return found


def user_risk(session: Session, *, user_id: int) -> dict[str, Any]:
    """``{score, signals}`` of one member (NotFound when there is none)."""
    score = session.execute(text("SELECT risk_score FROM users WHERE id = :user_id"),
                            {"user_id": user_id}).scalar()
    if score is None:
        raise NotFound("User not found")
    return {"score": score, "signals": signals_of(session, [user_id])[user_id]}


_QUEUE = text(
    """
    SELECT id AS user_id, email, name, status, risk_score AS score, payouts_frozen,
           count(*) OVER () AS total
    FROM users WHERE risk_score > 0 AND risk_score >= :min_score
    ORDER BY risk_score DESC, id LIMIT :limit OFFSET :offset
    """
)
_QUEUE_COUNT = text("SELECT count(*) FROM users WHERE risk_score > 0 AND risk_score >= :min_score")


def review_queue(session: Session, *, min_score: Decimal, limit: int,
                 offset: int) -> tuple[list[dict[str, Any]], int]:
    """Members with a score, highest first (ties by id), at least ``min_score``, each with their
    newest signals; and how many there are."""
    rows = session.execute(_QUEUE, {"min_score": min_score, "limit": limit,
                                    "offset": offset}).mappings().all()
    total = rows[0]["total"] if rows else session.execute(
        _QUEUE_COUNT, {"min_score": min_score}).scalar_one()
    signals = signals_of(session, [row["user_id"] for row in rows])
    return [{**row, "signals": signals[row["user_id"]]} for row in rows], total
