"""admin analytics rollups

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('analytics_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('revenue', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('reversed_amount', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('sales_created', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sales_approved', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sales_rejected', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sales_reversed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('signups', sa.Integer(), server_default='0', nullable=False),
    sa.Column('active_users', sa.Integer(), server_default='0', nullable=False),
    sa.Column('payouts_requested', sa.Integer(), server_default='0', nullable=False),
    sa.Column('payouts_paid', sa.Integer(), server_default='0', nullable=False),
    sa.Column('payouts_paid_amount', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('payouts_failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('payouts_cancelled', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_analytics_daily'))
    )
    op.create_table('analytics_fill_state',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('filled_through', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_analytics_fill_state'))
    )
    op.create_index('ix_ledger_entries_sale_created_at', 'ledger_entries', ['created_at'], unique=False, postgresql_where=sa.text("kind IN ('sale_credit', 'sale_reversal')"))
    op.add_column('offers', sa.Column('rejection_reason', sa.Text(), nullable=True))
    op.create_index('ix_payments_created_at', 'payments', ['created_at'], unique=False)
    op.create_index('ix_payments_pending', 'payments', ['needs_approval'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_sales_created_at', 'sales', ['created_at'], unique=False)
    op.create_index('ix_sales_decided_at', 'sales', ['decided_at'], unique=False, postgresql_where=sa.text("status IN ('rejected', 'reversed')"))
    op.create_index('ix_users_created_at', 'users', ['created_at'], unique=False)
    op.create_index('ix_users_not_active_status', 'users', ['status'], unique=False, postgresql_where=sa.text("status <> 'active'"))


def downgrade() -> None:
    op.drop_index('ix_users_not_active_status', table_name='users', postgresql_where=sa.text("status <> 'active'"))
    op.drop_index('ix_users_created_at', table_name='users')
    op.drop_index('ix_sales_decided_at', table_name='sales', postgresql_where=sa.text("status IN ('rejected', 'reversed')"))
    op.drop_index('ix_sales_created_at', table_name='sales')
    op.drop_index('ix_payments_pending', table_name='payments', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_payments_created_at', table_name='payments')
    op.drop_column('offers', 'rejection_reason')
    op.drop_index('ix_ledger_entries_sale_created_at', table_name='ledger_entries', postgresql_where=sa.text("kind IN ('sale_credit', 'sale_reversal')"))
    op.drop_table('analytics_fill_state')
    op.drop_table('analytics_daily')
