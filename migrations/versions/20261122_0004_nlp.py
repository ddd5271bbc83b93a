"""nlp: per-tenant custom intents, training examples, order-number patterns and model versions

Revision ID: 0004_nlp
Revises: 0001
Create Date: 2026-11-22 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.core.db

revision = "0004_nlp"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nlu_intents',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('created_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_nlu_intents_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nlu_intents')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_nlu_intents_tenant_id_name'))
    )
    op.create_table('nlu_examples',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('intent', sa.String(length=64), nullable=False),
    sa.Column('intent_id', sa.String(length=40), nullable=True),
    sa.Column('text', sa.String(length=500), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('created_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['intent_id'], ['nlu_intents.id'], name=op.f('fk_nlu_examples_intent_id_nlu_intents'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_nlu_examples_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nlu_examples')),
    sa.UniqueConstraint('tenant_id', 'intent', 'text', name=op.f('uq_nlu_examples_tenant_id_intent_text'))
    )
    with op.batch_alter_table('nlu_examples', schema=None) as batch_op:
        batch_op.create_index('ix_nlu_examples_intent_id', ['intent_id'], unique=False)
        batch_op.create_index('ix_nlu_examples_tenant_id_intent', ['tenant_id', 'intent'], unique=False)

    op.create_table('nlu_order_patterns',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('regex', sa.String(length=300), nullable=False),
    sa.Column('marketplace', sa.String(length=40), nullable=False),
    sa.Column('created_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_nlu_order_patterns_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nlu_order_patterns')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_nlu_order_patterns_tenant_id_name'))
    )
    op.create_table('nlu_models',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('example_count', sa.Integer(), nullable=False),
    sa.Column('custom_intents', sa.Integer(), nullable=False),
    sa.Column('trained_at', kefu.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kefu.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_nlu_models_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nlu_models')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_nlu_models_tenant_id'))
    )


def downgrade() -> None:
    op.drop_table('nlu_models')
    op.drop_table('nlu_order_patterns')
    with op.batch_alter_table('nlu_examples', schema=None) as batch_op:
        batch_op.drop_index('ix_nlu_examples_tenant_id_intent')
        batch_op.drop_index('ix_nlu_examples_intent_id')
    op.drop_table('nlu_examples')
    op.drop_table('nlu_intents')
