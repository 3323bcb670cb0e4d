"""Risk scores (docs/risk.md): the incremental score kept as signals are recorded equals the
beat's rebuild from the signals; decaying kinds stop counting after RISK_DECAY_DAYS; a clearing
keeps the signals and resets the score; admins hear ``risk:flagged`` once per crossing."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest
import redis
from freezegun import freeze_time
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.config import Settings
from common.effects import Resources, bind_resources
from common.models import OutboxEvent, RiskSignal
from common.risk_rules import KINDS
from common.services.risk import clear_risk, flag_crossed, rebuild_scores
from common.services.risk_signals import record_signal
from tests.fixtures.factories import make_user

_n = itertools.count(1)
_AUDIT: dict[str, Any] = {"actor_id": None, "ip": None, "trace_id": None}


def _bind(session: Session, settings: Settings, redis_sync: redis.Redis, **changes: Any) -> None:
    bind_resources(session, Resources(settings.model_copy(update=changes), redis_sync))


def _scores(session: Session, user_ids: list[int]) -> dict[int, Decimal]:
    rows = session.execute(text("SELECT id, risk_score FROM users WHERE id = ANY(:ids)"),
                           {"ids": user_ids})
    return {user_id: score for user_id, score in rows}


def _rebuild_all(session: Session, now: dt.datetime | None = None) -> None:
    after: int | None = 0
    while after is not None:
        _, after = rebuild_scores(session, after=after, limit=2, now=now)


def _record(session: Session, user_id: int, kind: str, fact: int) -> bool:
    return record_signal(session, user_id=user_id, kind=kind, detail={"fact": fact},
                         key=f"test:{kind}:{user_id}:{fact}")


@hsettings(max_examples=25, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(signals=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(KINDS), st.integers(0, 3)),
                        max_size=15),
       clear_after=st.none() | st.integers(0, 15))
def test_rebuild_equals_incremental(session: Session, settings: Settings, redis_sync: redis.Redis,
                                    signals: list[tuple[int, str, int]],
                                    clear_after: int | None) -> None:
    with session.begin_nested() as example:
        _bind(session, settings, redis_sync, risk_review_score=Decimal(10_000))
        users = [make_user(session).id for _ in range(3)]
        for i, (who, kind, fact) in enumerate(signals):  # repeats of a fact included
            if clear_after == i:
                clear_risk(session, user_id=users[0], reason="checked", audit=_AUDIT)
            _record(session, users[who], kind, fact)
        incremental = _scores(session, users)
        _rebuild_all(session)
        assert _scores(session, users) == incremental
        example.rollback()


def test_decaying_signals_stop_counting_and_links_stay(session: Session, settings: Settings,
                                                       redis_sync: redis.Redis) -> None:
    _bind(session, settings, redis_sync, risk_decay_days=30)
    user = make_user(session).id
    _record(session, user, "fast_conversion", 1)  # 10, decays
    _record(session, user, "shared_payout_destination", 1)  # 40, does not
    assert _scores(session, [user]) == {user: Decimal(50)}
    _rebuild_all(session, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=29))
    assert _scores(session, [user]) == {user: Decimal(50)}
    with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=31), real_asyncio=True):
        _rebuild_all(session)
    assert _scores(session, [user]) == {user: Decimal(40)}


def test_changed_weights_reach_the_scores_at_the_rebuild(session: Session, settings: Settings,
                                                         redis_sync: redis.Redis) -> None:
    _bind(session, settings, redis_sync)
    user = make_user(session).id
    _record(session, user, "listed_ip", 1)
    assert _scores(session, [user]) == {user: Decimal(50)}
    _bind(session, settings, redis_sync, risk_weights="listed_ip=5")
    _rebuild_all(session)
    assert _scores(session, [user]) == {user: Decimal(5)}


def test_clear_keeps_history_and_resets_the_score(session: Session, settings: Settings,
                                                  redis_sync: redis.Redis) -> None:
    _bind(session, settings, redis_sync)
    user = make_user(session).id
    _record(session, user, "listed_ip", 1)
    cleared = clear_risk(session, user_id=user, reason="their office VPN", audit=_AUDIT)
    assert cleared["score"] == 0 and [s["counts"] for s in cleared["signals"]] == [False]
    _rebuild_all(session)
    assert _scores(session, [user]) == {user: Decimal(0)}
    assert session.scalars(select(RiskSignal.kind)).all() == ["listed_ip"]


def _flagged_events(session: Session) -> list[tuple[int | None, dict[str, Any]]]:
    rows = session.scalars(select(OutboxEvent).where(OutboxEvent.event == "risk:flagged")
                           .order_by(OutboxEvent.id))
    return [(row.target_id, row.data) for row in rows]


def test_admins_hear_of_a_crossing_once(session: Session, settings: Settings,
                                        redis_sync: redis.Redis) -> None:
    _bind(session, settings, redis_sync, risk_review_score=Decimal(50))
    admins = [make_user(session, role="admin").id for _ in range(2)]
    user = make_user(session, name="Risky Rita")
    _record(session, user.id, "shared_payout_destination", 1)  # 40: under
    assert _flagged_events(session) == []
    _record(session, user.id, "fast_conversion", 1)  # 50: reached
    _record(session, user.id, "fast_conversion", 2)  # 60: told already
    assert _flagged_events(session) == [
        (admin, {"userId": user.id, "name": "Risky Rita", "score": 50.0}) for admin in admins]


def test_the_beat_tells_of_scores_the_hot_paths_raised(session: Session, settings: Settings,
                                                       redis_sync: redis.Redis) -> None:
    _bind(session, settings, redis_sync, risk_review_score=Decimal(20))
    admin = make_user(session, role="admin").id
    user = make_user(session).id
    # As the credit statement records: a row whose trigger moves the score, no announcement.
    session.execute(text(
        "INSERT INTO risk_signals (user_id, kind, idempotency_key, weight) "
        "VALUES (:u, 'postback_velocity', 'test:pv', 25)"), {"u": user})
    assert _flagged_events(session) == []
    assert flag_crossed(session) == 1
    assert flag_crossed(session) == 0
    assert [(target, data["userId"]) for target, data in _flagged_events(session)] == [(admin, user)]


@pytest.mark.parametrize("spec", ["nope=3", "listed_ip=x"])
def test_bad_weights_refuse_to_start(settings: Settings, spec: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)risk_weights"):
        Settings(**{**settings.model_dump(exclude={"networks"}), "risk_weights": spec})
