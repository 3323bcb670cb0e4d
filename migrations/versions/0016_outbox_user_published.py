"""outbox: user events by publication time, for a resume that replays events published after
the client's last one even when their ids are lower

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_user_published', 'outbox', ['target_id', 'published_at'],
                    unique=False, postgresql_where=sa.text("target = 'user'"))


def downgrade() -> None:
    op.drop_index('ix_outbox_user_published', table_name='outbox',
                  postgresql_where=sa.text("target = 'user'"))
