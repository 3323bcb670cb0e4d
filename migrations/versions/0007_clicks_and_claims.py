"""clicks with unguessable ids, tracking URLs, sales attributed to a click, missing-credit claims

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('offers', sa.Column('tracking_url', sa.String(length=2048), nullable=True))
    op.create_table('clicks',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('offer_id', sa.BigInteger(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_clicks_offer_id_offers')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_clicks_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clicks')),
    sa.UniqueConstraint('public_id', name=op.f('uq_clicks_public_id'))
    )
    op.create_index('ix_clicks_user_id_id', 'clicks', ['user_id', 'id'], unique=False)
    op.create_index('ix_clicks_created_at', 'clicks', ['created_at'], unique=False)
    op.create_table('claims',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('click_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('offer_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('decided_by', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('open', 'approved', 'rejected')", name=op.f('ck_claims_status')),
    sa.CheckConstraint('amount IS NULL OR amount >= 0', name=op.f('ck_claims_amount_not_negative')),
    sa.ForeignKeyConstraint(['click_id'], ['clicks.public_id'], name=op.f('fk_claims_click_id_clicks')),
    sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_claims_decided_by_users')),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_claims_offer_id_offers')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_claims_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claims')),
    sa.UniqueConstraint('click_id', name=op.f('uq_claims_click_id'))
    )
    op.create_index('ix_claims_user_id_id', 'claims', ['user_id', 'id'], unique=False)
    op.create_index('ix_claims_status_id', 'claims', ['status', 'id'], unique=False)
    op.add_column('sales', sa.Column('click_id', sa.String(length=32), nullable=True))
    op.add_column('sales', sa.Column('claim_id', sa.BigInteger(), nullable=True))
    op.create_foreign_key(op.f('fk_sales_click_id_clicks'), 'sales', 'clicks', ['click_id'], ['public_id'])
    op.create_foreign_key(op.f('fk_sales_claim_id_claims'), 'sales', 'claims', ['claim_id'], ['id'])
    op.create_unique_constraint(op.f('uq_sales_click_id'), 'sales', ['click_id'])
    op.create_unique_constraint(op.f('uq_sales_claim_id'), 'sales', ['claim_id'])


def downgrade() -> None:
    op.drop_constraint(op.f('uq_sales_claim_id'), 'sales', type_='unique')
    op.drop_constraint(op.f('uq_sales_click_id'), 'sales', type_='unique')
    op.drop_constraint(op.f('fk_sales_claim_id_claims'), 'sales', type_='foreignkey')
    op.drop_constraint(op.f('fk_sales_click_id_clicks'), 'sales', type_='foreignkey')
    op.drop_column('sales', 'claim_id')
    op.drop_column('sales', 'click_id')
    op.drop_index('ix_claims_status_id', table_name='claims')
    op.drop_index('ix_claims_user_id_id', table_name='claims')
    op.drop_table('claims')
    op.drop_index('ix_clicks_created_at', table_name='clicks')
    op.drop_index('ix_clicks_user_id_id', table_name='clicks')
    op.drop_table('clicks')
    op.drop_column('offers', 'tracking_url')
