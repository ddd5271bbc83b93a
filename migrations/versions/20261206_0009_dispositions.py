"""dispositions: how a conversation's resolution ended, and each tenant's changes to the list of codes

Revision ID: 0009_dispositions
Revises: 0008_merge_heads
Create Date: 2026-12-06 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.core.db

revision = "0009_dispositions"
down_revision = "0008_merge_heads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_conversations_tenant_id_disposition_id", ["tenant_id", "disposition", "id"],
                              unique=False)
    op.create_table(
        "disposition_codes",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("label_zh", sa.String(length=100), nullable=False),
        sa.Column("label_en", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", kefu.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kefu.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_disposition_codes_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "code", name=op.f("pk_disposition_codes")),
    )


def downgrade() -> None:
    op.drop_table("disposition_codes")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_tenant_id_disposition_id")
        batch_op.drop_column("disposition")
