"""risk: a weight per signal and a score per member kept by a trigger, frozen withdrawals, and
withdrawals held for a risk review

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# The incremental score: every recorded signal adds its weight to its member's score, whichever
# statement recorded it (a sign-up, the postback credit's CTEs, a referral approval), after that
# statement's own writes: an AFTER trigger's UPDATE sees the row as the statement left it, so it
# never races a CTE of the same statement that moves the member's balance. A signal from before
# the member's last clearing (an admin's "risk clear") does not count.
_SCORE_FUNCTION = """
CREATE FUNCTION risk_signal_scored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET risk_score = risk_score + NEW.weight
    WHERE id = NEW.user_id AND NEW.weight <> 0
      AND (risk_cleared_at IS NULL OR NEW.created_at >= risk_cleared_at);
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.add_column('risk_signals', sa.Column('weight', sa.Numeric(10, 2), server_default='0',
                                            nullable=False))
    op.add_column('users', sa.Column('risk_score', sa.Numeric(12, 2), server_default='0',
                                     nullable=False))
    op.add_column('users', sa.Column('risk_cleared_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('users', sa.Column('risk_flagged', sa.Boolean(), server_default=sa.text('false'),
                                     nullable=False))
    op.add_column('users', sa.Column('payouts_frozen', sa.Boolean(),
                                     server_default=sa.text('false'), nullable=False))
    op.add_column('payments', sa.Column('needs_review', sa.Boolean(),
                                        server_default=sa.text('false'), nullable=False))
    # The review queue reads members by score; most have none.
    op.create_index('ix_users_risk_score', 'users', ['risk_score', 'id'],
                    postgresql_where=sa.text('risk_score > 0'))
    # shared_signup_ip counts the sign-ups of one address in a day.
    op.create_index('ix_users_signup_ip_created_at', 'users', ['signup_ip', 'created_at'],
                    postgresql_where=sa.text('signup_ip IS NOT NULL'))
    # shared_payout_destination looks a destination up across members, folded as compared.
    op.create_index('ix_payments_destination_folded', 'payments',
                    [sa.text('lower(btrim(destination))')])
    op.execute(_SCORE_FUNCTION)
    op.execute('CREATE TRIGGER risk_signal_scored AFTER INSERT ON risk_signals '
               'FOR EACH ROW EXECUTE FUNCTION risk_signal_scored()')


def downgrade() -> None:
    op.execute('DROP TRIGGER risk_signal_scored ON risk_signals')
    op.execute('DROP FUNCTION risk_signal_scored()')
    op.drop_index('ix_payments_destination_folded', table_name='payments')
    op.drop_index('ix_users_signup_ip_created_at', table_name='users',
                  postgresql_where=sa.text('signup_ip IS NOT NULL'))
    op.drop_index('ix_users_risk_score', table_name='users',
                  postgresql_where=sa.text('risk_score > 0'))
    op.drop_column('payments', 'needs_review')
    op.drop_column('users', 'payouts_frozen')
    op.drop_column('users', 'risk_flagged')
    op.drop_column('users', 'risk_cleared_at')
    op.drop_column('users', 'risk_score')
    op.drop_column('risk_signals', 'weight')
