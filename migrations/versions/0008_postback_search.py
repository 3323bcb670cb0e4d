"""postback log search: transaction and user ids as columns, indexes for the admin search, replays

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# Rows logged before this revision: the transaction and user ids under the names the schemes we
# speak use (generic txn_id/user_id, CPX trans_id/user_id, SuperRewards id/uid, Tapjoy id/snuid).
# New rows get them from their network's adapter. A user id is kept only in its canonical form,
# as the adapters accept it; an id longer than the column names no transaction.
_TXN = "btrim(coalesce(params->>'txn_id', params->>'trans_id', params->>'id'))"
_USER = "btrim(coalesce(params->>'user_id', params->>'uid', params->>'snuid'))"
_BACKFILL = f"""
UPDATE postback_log SET
    txn_id = CASE WHEN length({_TXN}) BETWEEN 1 AND 128 THEN {_TXN} END,
    user_id = CASE WHEN {_USER} ~ '^[1-9][0-9]{{0,17}}$' THEN CAST({_USER} AS bigint) END
WHERE {_TXN} IS NOT NULL OR {_USER} IS NOT NULL
"""


def upgrade() -> None:
    op.add_column('postback_log', sa.Column('txn_id', sa.String(length=128), nullable=True))
    op.add_column('postback_log', sa.Column('user_id', sa.BigInteger(), nullable=True))
    op.add_column('postback_log', sa.Column('replay_of', sa.BigInteger(), nullable=True))
    op.execute(_BACKFILL)
    op.create_index('ix_postback_log_txn_id', 'postback_log', ['txn_id'], unique=False)
    op.create_index('ix_postback_log_user_id_created_at', 'postback_log', ['user_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_postback_log_network_outcome_created_at', 'postback_log', ['network', 'outcome', 'created_at', 'id'], unique=False)
    op.create_index('ix_postback_log_network_refused_created_at', 'postback_log', ['network', 'verdict', 'created_at', 'id'], unique=False, postgresql_where=sa.text("verdict <> 'accepted'"))


def downgrade() -> None:
    op.drop_index('ix_postback_log_network_refused_created_at', table_name='postback_log', postgresql_where=sa.text("verdict <> 'accepted'"))
    op.drop_index('ix_postback_log_network_outcome_created_at', table_name='postback_log')
    op.drop_index('ix_postback_log_user_id_created_at', table_name='postback_log')
    op.drop_index('ix_postback_log_txn_id', table_name='postback_log')
    op.drop_column('postback_log', 'replay_of')
    op.drop_column('postback_log', 'user_id')
    op.drop_column('postback_log', 'txn_id')
