"""nlp: the hash of the training data a tenant's model version was trained on

Nodes compare it with the model they loaded, so two trainings that ever ended with the same version number
cannot leave nodes serving different models unnoticed.

Revision ID: 0010_nlu_model_data_hash
Revises: 0009_dispositions
Create Date: 2026-12-06 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_nlu_model_data_hash"
down_revision = "0009_dispositions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nlu_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nlu_models", schema=None) as batch_op:
        batch_op.drop_column("data_hash")
