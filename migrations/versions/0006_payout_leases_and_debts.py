"""payout leases with a fencing token; a reversal may leave a balance in debt

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('payments', sa.Column('lease_token', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('payments', sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
    op.add_column('payments', sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True))
    # Payments a worker of the previous release may still be paying: leased to it for the default
    # PAYOUT_STUCK_SECONDS, so a new chain does not take them over while it runs (docs/operations.md
    # says to stop the payout workers before this migration anyway).
    op.execute("UPDATE payments SET lease_until = now() + interval '300 seconds' WHERE status = 'processing'")
    op.drop_index('ix_payments_processing', table_name='payments', postgresql_where=sa.text("status = 'processing'"))
    op.create_index('ix_payments_processing_lease', 'payments', ['lease_until'], unique=False, postgresql_where=sa.text("status = 'processing'"))
    op.drop_constraint(op.f('ck_users_balance_not_negative'), 'users', type_='check')


def downgrade() -> None:
    # A debt cannot be represented before this revision, and writing it off would need ledger
    # entries: refuse while any exists (an admin settles them through adjustments first).
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM users WHERE balance < 0) THEN "
        "RAISE EXCEPTION 'users in debt: settle them before downgrading below 0006'; END IF; END $$"
    )
    op.create_check_constraint(op.f('ck_users_balance_not_negative'), 'users', 'balance >= 0')
    op.drop_index('ix_payments_processing_lease', table_name='payments', postgresql_where=sa.text("status = 'processing'"))
    op.create_index('ix_payments_processing', 'payments', ['updated_at'], unique=False, postgresql_where=sa.text("status = 'processing'"))
    op.drop_column('payments', 'dispatched_at')
    op.drop_column('payments', 'lease_until')
    op.drop_column('payments', 'lease_token')
