"""merge the per-domain branches (routing, commerce, nlp, knowledge, workspace, bot) into one head

Each domain's revisions were written on top of 0001 in parallel, so the history had one head per domain
that only ``upgrade heads`` could apply. From here on there is one head: new revisions go after the newest
revision (``alembic heads`` shows it), never on a domain's older revision.

Revision ID: 0008_merge_heads
Revises: 0002_routing, 0010_commerce_claimed_at, 0004_nlp, 0005_knowledge, 0006a_attachment_safety, 0007_bot
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

revision = "0008_merge_heads"
down_revision = ("0002_routing", "0010_commerce_claimed_at", "0004_nlp", "0005_knowledge", "0006a_attachment_safety",
                 "0007_bot")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
