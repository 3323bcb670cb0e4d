"""one conversion paid once: a member's sales of an offer by time, for the claim rule and for
the claim's sale that a late report of the offer becomes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-12
"""
from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_sales_user_id_offer_id_created_at', 'sales',
                    ['user_id', 'offer_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sales_user_id_offer_id_created_at', table_name='sales')
