"""The risk beat chores (workers/tasks/risk.py) on committed data: ``risk.rebuild`` drops what
decayed and applies to every batch; ``risk.flag`` tells admins of a score a hot path raised."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from common.services.risk_signals import record_signal
from tests.fixtures.factories import make_user
from workers.tasks import risk

pytestmark = pytest.mark.committed


def test_rebuild_and_flag_chores(committed: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk, "BATCH", 2)  # several batches
    with Session(committed, expire_on_commit=False) as session, session.begin():
        admin = make_user(session, role="admin").id
        users = [make_user(session).id for _ in range(5)]
        for user_id in users:
            record_signal(session, user_id=user_id, kind="fast_conversion", detail={},
                          key=f"test:old:{user_id}")
        # As the postback statement records: the trigger scores them, nobody is told yet.
        session.execute(text(
            "INSERT INTO risk_signals (user_id, kind, idempotency_key, weight) VALUES "
            "(:u, 'postback_velocity', 'test:pv', 25), (:u, 'referral_abuse', 'test:ra', 40)"),
            {"u": users[0]})
        session.execute(text("UPDATE risk_signals SET created_at = now() - interval '40 days' "
                             "WHERE kind = 'fast_conversion'"))
    assert risk.rebuild() == 5  # the decayed signals no longer count
    assert risk.flag() == 0  # the rebuild's own sweep told the admin already
    with committed.connect() as conn:
        scores = dict(conn.execute(text(
            "SELECT id, risk_score FROM users WHERE id = ANY(:ids)"), {"ids": users}).all())
        told = conn.execute(text("SELECT target_id, data->>'userId' FROM outbox "
                                 "WHERE event = 'risk:flagged'")).all()
    assert scores == {users[0]: 65, **{u: 0 for u in users[1:]}}
    assert [(t, int(u)) for t, u in told] == [(admin, users[0])]
