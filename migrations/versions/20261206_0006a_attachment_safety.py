"""attachments: when an upload was first sent in a message, upload-budget indexes, per-tenant stored bytes

Revision ID: 0006a_attachment_safety
Revises: 0006_workspace
Create Date: 2026-12-06 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.core.db

revision = "0006a_attachment_safety"
down_revision = "0006_workspace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attached_at", kefu.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_attachments_tenant_id_uploader_id_created_at",
                              ["tenant_id", "uploader_id", "created_at"], unique=False)
        batch_op.create_index("ix_attachments_tenant_id_inbox_id_created_at",
                              ["tenant_id", "inbox_id", "created_at"], unique=False)
        batch_op.create_index("ix_attachments_attached_at_created_at", ["attached_at", "created_at"], unique=False)
        batch_op.create_index("ix_attachments_storage_key", ["storage_key"], unique=False)
    # Rows tied to a conversation before this revision may have been sent (an internal note leaves no other
    # trace): keep them all, rather than let the sweep delete a file a transcript shows.
    op.execute("UPDATE attachments SET attached_at = created_at WHERE conversation_id IS NOT NULL")
    op.create_table(
        "attachment_usage",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_attachment_usage_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_attachment_usage")),
    )
    op.execute("INSERT INTO attachment_usage (tenant_id, bytes) "
               "SELECT tenant_id, SUM(size) FROM attachments GROUP BY tenant_id")


def downgrade() -> None:
    op.drop_table("attachment_usage")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index("ix_attachments_storage_key")
        batch_op.drop_index("ix_attachments_attached_at_created_at")
        batch_op.drop_index("ix_attachments_tenant_id_inbox_id_created_at")
        batch_op.drop_index("ix_attachments_tenant_id_uploader_id_created_at")
        batch_op.drop_column("attached_at")
