"""commerce: when an order action was claimed (so an abandoned ``pending`` action can be found and run again)
and the plan it was claimed with (so running it again under its key executes the same thing)

Revision ID: 0010_commerce_claimed_at
Revises: 0003_commerce
Create Date: 2026-12-06 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.core.db

revision = "0010_commerce_claimed_at"
down_revision = "0003_commerce"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("commerce_actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", kefu.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch_op.create_index("ix_commerce_actions_status_claimed_at", ["status", "claimed_at"], unique=False)
    # Actions claimed before this column existed: their creation time is the best claim time there is.
    op.execute("UPDATE commerce_actions SET claimed_at = created_at WHERE status = 'pending'")


def downgrade() -> None:
    with op.batch_alter_table("commerce_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_commerce_actions_status_claimed_at")
        batch_op.drop_column("plan")
        batch_op.drop_column("claimed_at")
