"""referrals: a code per user, who referred whom (set once), the sign-up address, referral ledger
kinds, and risk signals

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# The one rule for referral codes: 10 characters of Crockford's base32 alphabet (no I, L, O, U)
# from 50 random bits of gen_random_uuid() (bytes 0-5 and 7-10; byte 6 holds the UUID's version),
# never derived from the id. The column's default, so every way a user row is made gets one.
_CODE_FUNCTION = """
CREATE FUNCTION new_referral_code() RETURNS varchar LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', 1 + get_byte(r.b, i) % 32, 1), ''
                      ORDER BY i)
    FROM (SELECT uuid_send(gen_random_uuid()) AS b) AS r,
         unnest(ARRAY[0, 1, 2, 3, 4, 5, 7, 8, 9, 10]) AS i
$$
"""
# Existing users get a code; the rare duplicate draws again until every code is unique.
_BACKFILL = """
DO $$ BEGIN
    UPDATE users SET referral_code = new_referral_code();
    LOOP
        UPDATE users SET referral_code = new_referral_code()
        WHERE id IN (SELECT id FROM (
            SELECT id, row_number() OVER (PARTITION BY referral_code ORDER BY id) AS n FROM users
        ) AS dup WHERE n > 1);
        EXIT WHEN NOT FOUND;
    END LOOP;
END $$
"""
# Who referred a member is decided once, at sign-up.
_REFERRED_ONCE = """
CREATE FUNCTION users_referred_by_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'users.referred_by is set once, at sign-up';
END $$;
CREATE TRIGGER users_referred_by_once BEFORE UPDATE OF referred_by ON users
    FOR EACH ROW WHEN (OLD.referred_by IS DISTINCT FROM NEW.referred_by)
    EXECUTE FUNCTION users_referred_by_once();
"""
_KINDS = ("'sale_credit', 'sale_reversal', 'payout_hold', 'payout_release', 'adjustment', "
          "'prize'")


def upgrade() -> None:
    op.execute(_CODE_FUNCTION)
    op.add_column('users', sa.Column('referral_code', sa.String(length=16), nullable=True))
    op.execute(_BACKFILL)
    op.alter_column('users', 'referral_code', nullable=False,
                    server_default=sa.text('new_referral_code()'))
    op.create_unique_constraint(op.f('uq_users_referral_code'), 'users', ['referral_code'])
    op.add_column('users', sa.Column('referred_by', sa.BigInteger(), nullable=True))
    op.add_column('users', sa.Column('signup_ip', sa.String(length=64), nullable=True))
    op.create_foreign_key(op.f('fk_users_referred_by_users'), 'users', 'users', ['referred_by'], ['id'])
    op.create_check_constraint(op.f('ck_users_not_own_referrer'), 'users', 'referred_by <> id')
    op.create_index('ix_users_referred_by_id', 'users', ['referred_by', 'id'], unique=False,
                    postgresql_where=sa.text('referred_by IS NOT NULL'))
    op.execute(_REFERRED_ONCE)

    op.drop_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries', type_='check')
    op.create_check_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries',
                               f"kind IN ({_KINDS}, 'referral', 'referral_reversal')")
    op.create_index('ix_ledger_entries_referral_created_at', 'ledger_entries', ['created_at'],
                    unique=False,
                    postgresql_where=sa.text("kind IN ('referral', 'referral_reversal')"))

    op.create_table('risk_signals',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_risk_signals_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_signals')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_risk_signals_idempotency_key'))
    )
    op.create_index('ix_risk_signals_user_id_created_at', 'risk_signals', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    # Referral entries cannot be represented before this revision, and removing them would break
    # balance == sum(ledger): refuse while any exists.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM ledger_entries WHERE kind IN "
        "('referral', 'referral_reversal')) THEN RAISE EXCEPTION "
        "'referral ledger entries exist: cannot downgrade below 0012'; END IF; END $$"
    )
    op.drop_index('ix_risk_signals_user_id_created_at', table_name='risk_signals')
    op.drop_table('risk_signals')
    op.drop_index('ix_ledger_entries_referral_created_at', table_name='ledger_entries',
                  postgresql_where=sa.text("kind IN ('referral', 'referral_reversal')"))
    op.drop_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries', type_='check')
    op.create_check_constraint(op.f('ck_ledger_entries_kind'), 'ledger_entries', f"kind IN ({_KINDS})")
    op.execute('DROP TRIGGER users_referred_by_once ON users')
    op.execute('DROP FUNCTION users_referred_by_once()')
    op.drop_index('ix_users_referred_by_id', table_name='users',
                  postgresql_where=sa.text('referred_by IS NOT NULL'))
    op.drop_constraint(op.f('ck_users_not_own_referrer'), 'users', type_='check')
    op.drop_constraint(op.f('fk_users_referred_by_users'), 'users', type_='foreignkey')
    op.drop_column('users', 'signup_ip')
    op.drop_column('users', 'referred_by')
    op.drop_constraint(op.f('uq_users_referral_code'), 'users', type_='unique')
    op.drop_column('users', 'referral_code')
    op.execute('DROP FUNCTION new_referral_code()')
