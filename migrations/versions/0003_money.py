"""money: offers, sales, postback log, ledger, payments, idempotency keys, notifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The ledger is append-only: corrections are new entries, never edits.
_APPEND_ONLY = """
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
"""


def upgrade() -> None:
    op.create_table('offers',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('payout_type', sa.String(length=8), server_default='share', nullable=False),
    sa.Column('user_share', sa.Numeric(precision=5, scale=4), server_default='0.7', nullable=False),
    sa.Column('fixed_payout', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('network_payout', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('payout', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("payout_type <> 'fixed' OR fixed_payout IS NOT NULL", name=op.f('ck_offers_fixed_has_amount')),
    sa.CheckConstraint("payout_type IN ('share', 'fixed')", name=op.f('ck_offers_payout_type')),
    sa.CheckConstraint("status IN ('pending', 'active', 'rejected', 'paused')", name=op.f('ck_offers_status')),
    sa.CheckConstraint('payout >= 0 AND network_payout >= 0', name=op.f('ck_offers_payout_not_negative')),
    sa.CheckConstraint('user_share >= 0 AND user_share <= 1', name=op.f('ck_offers_user_share_fraction')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offers')),
    sa.UniqueConstraint('network', 'external_id', name=op.f('uq_offers_network_external_id'))
    )
    op.create_index('ix_offers_active_category_id', 'offers', ['category', 'id'], unique=False, postgresql_where=sa.text("status = 'active'"))
    op.create_index('ix_offers_active_id', 'offers', ['id'], unique=False, postgresql_where=sa.text("status = 'active'"))
    op.create_table('postback_log',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('verdict', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=True),
    sa.Column('sale_id', sa.BigInteger(), nullable=True),
    sa.Column('trace_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postback_log'))
    )
    op.create_index('ix_postback_log_created_at', 'postback_log', ['created_at'], unique=False)
    op.create_index('ix_postback_log_network_id', 'postback_log', ['network', 'id'], unique=False)
    op.create_table('sandbox_payouts',
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('destination', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('idempotency_key', name=op.f('pk_sandbox_payouts'))
    )
    op.create_table('idempotency_keys',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('response_status', sa.SmallInteger(), nullable=True),
    sa.Column('response_body', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_idempotency_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('user_id', 'key', name=op.f('uq_idempotency_keys_user_id_key'))
    )
    op.create_index('ix_idempotency_keys_expires_at', 'idempotency_keys', ['expires_at'], unique=False)
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('reference_type', sa.String(length=32), nullable=True),
    sa.Column('reference_id', sa.BigInteger(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('sale_credit', 'sale_reversal', 'payout_hold', 'payout_release', 'adjustment', 'prize')", name=op.f('ck_ledger_entries_kind')),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_entries_amount_not_zero')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ledger_entries_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_entries_idempotency_key'))
    )
    op.create_index('ix_ledger_entries_user_id_id', 'ledger_entries', ['user_id', 'id'], unique=False)
    op.create_table('notifications',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), server_default='', nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    op.create_index('ix_notifications_unread', 'notifications', ['user_id', 'id'], unique=False, postgresql_where=sa.text('read_at IS NULL'))
    op.create_index('ix_notifications_user_id_id', 'notifications', ['user_id', 'id'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('destination', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('needs_approval', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('provider_reference', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("method IN ('paypal', 'crypto', 'giftcard')", name=op.f('ck_payments_method')),
    sa.CheckConstraint("status IN ('pending', 'processing', 'paid', 'failed', 'cancelled')", name=op.f('ck_payments_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payments_amount_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments'))
    )
    op.create_index('ix_payments_processing', 'payments', ['updated_at'], unique=False, postgresql_where=sa.text("status = 'processing'"))
    op.create_index('ix_payments_user_id_id', 'payments', ['user_id', 'id'], unique=False)
    op.create_table('sales',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('offer_id', sa.BigInteger(), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('sale_amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('commission_amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('hold_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'reversed')", name=op.f('ck_sales_status')),
    sa.CheckConstraint('sale_amount >= 0 AND commission_amount >= 0', name=op.f('ck_sales_amounts_not_negative')),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_sales_offer_id_offers')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sales_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales')),
    sa.UniqueConstraint('network', 'external_id', name=op.f('uq_sales_network_external_id'))
    )
    op.create_index('ix_sales_pending_hold_until', 'sales', ['hold_until'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_sales_user_id_id', 'sales', ['user_id', 'id'], unique=False)

    op.execute(_APPEND_ONLY)

def downgrade() -> None:
    op.execute('DROP TRIGGER ledger_entries_append_only ON ledger_entries')
    op.execute('DROP FUNCTION ledger_entries_append_only()')
    op.drop_index('ix_sales_user_id_id', table_name='sales')
    op.drop_index('ix_sales_pending_hold_until', table_name='sales', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('sales')
    op.drop_index('ix_payments_user_id_id', table_name='payments')
    op.drop_index('ix_payments_processing', table_name='payments', postgresql_where=sa.text("status = 'processing'"))
    op.drop_table('payments')
    op.drop_index('ix_notifications_user_id_id', table_name='notifications')
    op.drop_index('ix_notifications_unread', table_name='notifications', postgresql_where=sa.text('read_at IS NULL'))
    op.drop_table('notifications')
    op.drop_index('ix_ledger_entries_user_id_id', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_index('ix_idempotency_keys_expires_at', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_table('sandbox_payouts')
    op.drop_index('ix_postback_log_network_id', table_name='postback_log')
    op.drop_index('ix_postback_log_created_at', table_name='postback_log')
    op.drop_table('postback_log')
    op.drop_index('ix_offers_active_id', table_name='offers', postgresql_where=sa.text("status = 'active'"))
    op.drop_index('ix_offers_active_category_id', table_name='offers', postgresql_where=sa.text("status = 'active'"))
    op.drop_table('offers')
