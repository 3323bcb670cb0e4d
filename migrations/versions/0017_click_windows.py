"""click_windows: each member's click rate limit, kept beside their clicks so that the click's
one statement counts it (docs/money.md "Clicks")

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'click_windows',
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('stamps', postgresql.ARRAY(sa.DateTime(timezone=True)), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_click_windows_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_click_windows')),
    )


def downgrade() -> None:
    op.drop_table('click_windows')
