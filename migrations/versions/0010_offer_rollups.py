"""conversion analytics: clicks, conversions and their commission per offer and UTC day

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-10

Only the new table: the beat fills it from the first click's day on by itself (its own fill
state, ``offers``), so nothing is copied here.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('analytics_offer_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('offer_id', sa.BigInteger(), nullable=False),
    sa.Column('clicks', sa.Integer(), server_default='0', nullable=False),
    sa.Column('conversions', sa.Integer(), server_default='0', nullable=False),
    sa.Column('revenue', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('reversed_amount', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_analytics_offer_daily_offer_id_offers')),
    sa.PrimaryKeyConstraint('day', 'offer_id', name=op.f('pk_analytics_offer_daily'))
    )


def downgrade() -> None:
    op.drop_table('analytics_offer_daily')
    op.execute("DELETE FROM analytics_fill_state WHERE name = 'offers'")
