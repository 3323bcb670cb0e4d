"""The score rebuild against the hot paths, on a real PostgreSQL: a signal recorded while a batch
is being rebuilt counts once (the rebuilt score equals the incremental one), and the batch's
locks do not stall what only references its members (a click, a payment's insert)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.risk import rebuild_scores
from common.services.risk_signals import record_signal
from tests.fixtures.factories import make_user
from tests.fixtures.interleave import Background, wait_until_blocked

pytestmark = pytest.mark.committed


def _member_with_a_signal(engine: Engine) -> int:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        user_id = make_user(session).id
        record_signal(session, user_id=user_id, kind="listed_ip", detail={}, key=f"t:{user_id}:1")
        session.execute(text("UPDATE users SET risk_score = 0 WHERE id = :id"), {"id": user_id})
    return user_id


def _score(engine: Engine, user_id: int) -> Decimal:
    with engine.connect() as conn:
        return conn.execute(text("SELECT risk_score FROM users WHERE id = :id"),
                            {"id": user_id}).scalar_one()


def test_a_signal_recorded_during_a_rebuild_counts_once(committed: Engine) -> None:
    user_id = _member_with_a_signal(committed)  # its score drifted to 0: the rebuild fixes it
    rebuild = Session(committed, expire_on_commit=False)
    rebuild.begin()
    assert rebuild_scores(rebuild, after=0) == (1, user_id)  # 50, the batch locked
    signal = Background(committed, lambda s: record_signal(
        s, user_id=user_id, kind="fast_conversion", detail={}, key=f"t:{user_id}:2")).start()
    wait_until_blocked(committed, signal.pid)
    rebuild.commit()
    rebuild.close()
    signal.join()
    assert signal.error is None and signal.result is True
    assert _score(committed, user_id) == Decimal(60)
    with Session(committed) as session, session.begin():  # a second rebuild agrees
        assert rebuild_scores(session, after=0) == (0, user_id)
    assert _score(committed, user_id) == Decimal(60)


def test_a_rebuild_batch_does_not_stall_inserts_naming_its_members(committed: Engine) -> None:
    user_id = _member_with_a_signal(committed)
    rebuild = Session(committed, expire_on_commit=False)
    rebuild.begin()
    rebuild_scores(rebuild, after=0)
    try:
        # What the foreign key check of a click's or a payment's insert takes on the member.
        def reference(session: Session) -> int:
            session.execute(text("SET LOCAL lock_timeout = '2s'"))
            return session.execute(text("SELECT id FROM users WHERE id = :id FOR KEY SHARE"),
                                   {"id": user_id}).scalar_one()

        insert = Background(committed, reference).start().join()
        assert insert.error is None and insert.result == user_id
    finally:
        rebuild.rollback()
        rebuild.close()
