"""The beat schedule: every periodic chore in one place (exactly one beat runs it)."""

from __future__ import annotations

from typing import Any

SCHEDULE: dict[str, dict[str, Any]] = {
    "analytics.fill_daily": {"task": "analytics.fill_daily", "schedule": 300.0},
    "leaderboard.rebuild": {"task": "leaderboard.rebuild", "schedule": 300.0},
    "leaderboard.pay_prizes": {"task": "leaderboard.pay_prizes", "schedule": 600.0},
    "events.sweep_outbox": {"task": "events.sweep_outbox", "schedule": 10.0},
    "events.purge_outbox": {"task": "events.purge_outbox", "schedule": 3600.0},
    "sales.approve_due": {"task": "sales.approve_due", "schedule": 10.0},
    "sales.purge_clicks": {"task": "sales.purge_clicks", "schedule": 3600.0},
    "payouts.recover": {"task": "payouts.recover", "schedule": 60.0},
    "payouts.purge_idempotency_keys": {"task": "payouts.purge_idempotency_keys", "schedule": 3600.0},
    # docs/risk.md: decay and changed weights reach the scores hourly; a score the postback or
    # click path raised past RISK_REVIEW_SCORE reaches the admins within 30 seconds.
    "risk.rebuild": {"task": "risk.rebuild", "schedule": 3600.0},
    "risk.flag": {"task": "risk.flag", "schedule": 30.0},
}
