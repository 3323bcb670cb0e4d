"""Leaderboards: daily, weekly (ISO), monthly and all-time, UTC (docs/api.md "Admin").

Score = approved commission of sales that are approved now, counted in the period of their
approval (``sales.decided_at`` of an approved sale; for a reversed one, the ``sale_credit``
ledger entry's time, which is the same instant). Equal scores rank by earlier signup (smaller
user id: ids are given at signup), so ranks are unique and stable.

Redis keeps one sorted set per period bucket: the score in integer cents (exact in a double) and
the member ``10**19 - 1 - user_id`` zero-padded, so ZREVRANGE's tie order (members descending)
is user id ascending. Approvals and reversals register their deltas as after-commit effects of
their unit of work (``common/uow.py``); they reach Redis only after the commit (a rolled-back
approval never counts). The keys' prefix, the announcement interval and the Redis client of the
throttle are the unit's (``common.effects.resources``). A process dying between
commit and that update leaves the set short until the beat's absolute rebuild, which builds
each set from PostgreSQL into a temporary key and RENAMEs it over the live one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.orm import Session

from common.config import Settings
from common.effects import Resources, after_commit, resources
from common.events import emit
from common.redis import key
from common.services.ledger import Entry, post_entries

log = logging.getLogger(__name__)
PERIODS = ("daily", "weekly", "monthly", "all_time")
_PAD = 10**19 - 1


def bucket(period: str, at: dt.datetime) -> str:
    """The bucket of ``at`` (UTC): ``2026-11-24``, ``2026-W48``, ``2026-11`` or ``all``."""
    at = at.astimezone(dt.UTC)
    if period == "daily":
        return at.date().isoformat()
    if period == "weekly":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "monthly":
        return f"{at.year}-{at.month:02d}"
    if period == "all_time":
        return "all"
    raise ValueError(period)


def bounds(period: str, name: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a bucket, UTC."""
    if period == "daily":
        start = dt.datetime.fromisoformat(name).replace(tzinfo=dt.UTC)
        return start, start + dt.timedelta(days=1)
    if period == "weekly":
        year, week = name.split("-W")
        start = dt.datetime.fromisocalendar(int(year), int(week), 1).replace(tzinfo=dt.UTC)
        return start, start + dt.timedelta(weeks=1)
    if period == "monthly":
        y, m = map(int, name.split("-"))
        start = dt.datetime(y, m, 1, tzinfo=dt.UTC)
        nxt = dt.datetime(y + m // 12, m % 12 + 1, 1, tzinfo=dt.UTC)
        return start, nxt
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def previous_bucket(period: str, now: dt.datetime) -> str:
    start, _ = bounds(period, bucket(period, now))
    return bucket(period, start - dt.timedelta(seconds=1))


def member(user_id: int) -> str:
    return f"{_PAD - user_id:019d}"


def user_of(member_name: bytes | str) -> int:
    return _PAD - int(member_name)


def board_key(settings: Settings, period: str, name: str) -> str:
    return key(settings, "lb", period, name)


# ---------------------------------------------------------------- incremental (after commit)

_APPROVED = text(
    "SELECT user_id, commission_amount, decided_at FROM sales "
    "WHERE id = ANY(:ids) AND status = 'approved' AND commission_amount > 0"
)
_CREDITED_AT = text("SELECT created_at FROM ledger_entries WHERE idempotency_key = :key")


def record_approvals(session: Session, *, sale_ids: Sequence[int]) -> None:
    """Call in the approving transaction with the sales it approved."""
    if not sale_ids:
        return
    rows = session.execute(_APPROVED, {"ids": list(sale_ids)}).all()
    record_approved(session, [(r.user_id, r.commission_amount, r.decided_at) for r in rows])


def record_approved(session: Session, sales: Sequence[tuple[int, Decimal, dt.datetime]]) -> None:
    """``record_approvals`` for a caller that has the approved sales' ``(user_id,
    commission_amount, decided_at)`` at hand already."""
    _record(session, [sale for sale in sales if sale[1] > 0])


def record_reversal(session: Session, *, sale_id: int, user_id: int, amount: Decimal) -> None:
    """Call in the reversing transaction: the sale leaves the buckets of its approval."""
    credited = session.execute(_CREDITED_AT, {"key": f"sale_credit:{sale_id}"}).scalar()
    if credited is not None and amount > 0:
        _record(session, [(user_id, -amount, credited)])


def _record(session: Session, changes: list[tuple[int, Decimal, dt.datetime]]) -> None:
    deltas = after_commit(session).leaderboard
    found = resources(session)
    settings = found.settings
    touched = set()
    boards: dict[dt.datetime, list[str]] = {}  # a batch's sales share one instant: once each
    for user_id, amount, at in changes:
        if at not in boards:
            names = [(period, bucket(period, at)) for period in PERIODS]
            touched.update(names)
            boards[at] = [board_key(settings, period, name) for period, name in names]
        who, cents = member(user_id), int(amount * 100)
        deltas.extend((board, who, cents) for board in boards[at])
    _announce(session, found, touched)


def _announce(session: Session, found: Resources, touched: Iterable[tuple[str, str]]) -> None:
    """``leaderboard:updated`` through the outbox, at most once per interval per period (a slot
    taken by a transaction that then rolls back only skips one announcement)."""
    client, settings = found.redis, found.settings
    for period, name in sorted(touched):
        throttle = key(settings, "lb-throttle", period)
        try:
            fresh = client.set(throttle, name, nx=True, ex=settings.leaderboard_event_interval)
        except redis.RedisError:  # an approval never fails for an announcement
            log.warning("leaderboard announcement skipped", exc_info=True)
            return
        if fresh:
            emit(session, event="leaderboard:updated", data={"leaderboard": period, "period": name})


# ---------------------------------------------------------------- absolute rebuild

_SCORES = text(
    """
    SELECT user_id, sum(commission_amount) AS score FROM sales
    WHERE status = 'approved' AND decided_at >= :lo AND decided_at < :hi
    GROUP BY user_id HAVING sum(commission_amount) > 0
    """
)


def scores(session: Session, *, period: str, name: str) -> dict[int, Decimal]:
    lo, hi = bounds(period, name)
    return {r.user_id: r.score for r in session.execute(_SCORES, {"lo": lo, "hi": hi})}


def rebuild(session: Session, *, client: redis.Redis, settings: Settings, period: str,
            name: str) -> int:
    """Replace one bucket's set with PostgreSQL's figures; returns its size. Concurrent
    rebuilds each build their own temporary key; RENAME swaps atomically."""
    figures = scores(session, period=period, name=name)
    board = board_key(settings, period, name)
    temp = f"{board}:build:{id(figures)}:{dt.datetime.now(dt.UTC).timestamp()}"
    items = list(figures.items())
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(items), 10_000):
        chunk = items[start:start + 10_000]
        pipe.zadd(temp, {member(u): int(s * 100) for u, s in chunk})
    pipe.execute()
    if items:
        client.rename(temp, board)
    else:
        client.delete(board)
    return len(items)


def rebuild_current(session: Session, *, client: redis.Redis, settings: Settings,
                    now: dt.datetime) -> dict[str, int]:
    """The current bucket of every period, and the previous one (late reversals)."""
    done = {}
    for period in PERIODS:
        names = {bucket(period, now)}
        if period != "all_time":
            names.add(previous_bucket(period, now))
        for name in sorted(names):
            done[f"{period}:{name}"] = rebuild(session, client=client, settings=settings,
                                               period=period, name=name)
    return done


# ---------------------------------------------------------------- prizes


def prize_table(spec: str) -> dict[str, list[Decimal]]:
    """``daily=5,3,1;weekly=25,10`` -> {"daily": [5, 3, 1], "weekly": [25, 10]}."""
    table: dict[str, list[Decimal]] = {}
    for part in filter(None, spec.split(";")):
        period, amounts = part.split("=")
        table[period] = [Decimal(a) for a in amounts.split(",") if a]
    return table


_TOP = text(
    """
    SELECT user_id, sum(commission_amount) AS score FROM sales
    WHERE status = 'approved' AND decided_at >= :lo AND decided_at < :hi
    GROUP BY user_id HAVING sum(commission_amount) > 0
    ORDER BY score DESC, user_id LIMIT :n
    """
)


def pay_prizes(session: Session, *, table: dict[str, list[Decimal]], now: dt.datetime) -> list[Any]:
    """Pay the top ranks of each period's last closed bucket through the ledger (kind
    ``prize``, key ``prize:<period>:<bucket>:<rank>``): a second run posts nothing."""
    prizes, entries = [], []
    for period, amounts in table.items():
        name = previous_bucket(period, now)
        lo, hi = bounds(period, name)
        top = session.execute(_TOP, {"lo": lo, "hi": hi, "n": len(amounts)}).all()
        for rank, (row, amount) in enumerate(zip(top, amounts, strict=False), start=1):
            if amount > 0:
                prizes.append((period, name, rank, row.user_id, amount))
                entries.append(Entry(user_id=row.user_id, amount=amount, kind="prize",
                                     key=f"prize:{period}:{name}:{rank}",
                                     reason=f"{period} prize #{rank}"))
    # One posting for every prize: its user rows are locked in id order, as the approval batch
    # locks them, so the two never deadlock (one post per rank would lock in rank order).
    posted = post_entries(session, entries)
    return [prize for prize, done in zip(prizes, posted, strict=True) if done is not None]
