"""knowledge base: entries, versions, bot questions

Revision ID: 0005_knowledge
Revises: 0001
Create Date: 2026-11-22 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.core.db

revision = "0005_knowledge"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_entries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('external_key', sa.String(length=200), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('product_ids', sa.JSON(), nullable=False),
    sa.Column('valid_from', kefu.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('valid_until', kefu.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('question', sa.String(length=500), nullable=False),
    sa.Column('paraphrases', sa.JSON(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('chunks', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('published_version', sa.Integer(), nullable=True),
    sa.Column('published_at', kefu.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('views', sa.Integer(), nullable=False),
    sa.Column('answers_given', sa.Integer(), nullable=False),
    sa.Column('helpful', sa.Integer(), nullable=False),
    sa.Column('not_helpful', sa.Integer(), nullable=False),
    sa.Column('handoffs', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_kb_entries_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_entries')),
    sa.UniqueConstraint('tenant_id', 'external_key', name=op.f('uq_kb_entries_tenant_id_external_key'))
    )
    with op.batch_alter_table('kb_entries', schema=None) as batch_op:
        batch_op.create_index('ix_kb_entries_tenant_id_status', ['tenant_id', 'status'], unique=False)

    op.create_table('kb_queries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('channel', sa.String(length=40), nullable=True),
    sa.Column('conversation_id', sa.String(length=40), nullable=True),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('entry_id', sa.String(length=40), nullable=True),
    sa.Column('candidates', sa.JSON(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('feedback', sa.String(length=20), nullable=True),
    sa.Column('handed_off', sa.Boolean(), nullable=False),
    sa.Column('created_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_kb_queries_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_queries'))
    )
    with op.batch_alter_table('kb_queries', schema=None) as batch_op:
        batch_op.create_index('ix_kb_queries_tenant_id_created_at', ['tenant_id', 'created_at'], unique=False)

    op.create_table('kb_entry_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('entry_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('question', sa.String(length=500), nullable=False),
    sa.Column('paraphrases', sa.JSON(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('chunks', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['kb_entries.id'], name=op.f('fk_kb_entry_versions_entry_id_kb_entries')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_kb_entry_versions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_entry_versions')),
    sa.UniqueConstraint('entry_id', 'version', name=op.f('uq_kb_entry_versions_entry_id_version'))
    )


def downgrade() -> None:
    op.drop_table("kb_entry_versions")
    with op.batch_alter_table("kb_queries", schema=None) as batch_op:
        batch_op.drop_index("ix_kb_queries_tenant_id_created_at")
    op.drop_table("kb_queries")
    with op.batch_alter_table("kb_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_kb_entries_tenant_id_status")
    op.drop_table("kb_entries")
