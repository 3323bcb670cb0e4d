"""What a service reaches inside its transaction besides the session (common.effects.resources):
the settings and Redis client of the unit of work that opened the session."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from common.config import Settings
from common.effects import process_resources, resources
from common.uow import SyncContext


class _RolledBack(Exception):
    pass


def test_a_units_sessions_carry_its_settings_and_client(engine: Engine, settings: Settings,
                                                        redis_sync: redis.Redis) -> None:
    own = settings.model_copy(update={"redis_prefix": f"{settings.redis_prefix}-own"})
    ctx = SyncContext.create(own, engine=engine, client=redis_sync)
    with pytest.raises(_RolledBack), ctx.transaction() as session:
        found = resources(session)
        assert found.settings is own and found.redis is redis_sync
        raise _RolledBack


def test_a_session_no_unit_opened_uses_the_process_settings(session: Session) -> None:
    assert resources(session) is process_resources()
