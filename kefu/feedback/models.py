"""Customer satisfaction (CSAT) ratings, one per resolution of a conversation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class CsatRating(Base):
    __tablename__ = "csat_ratings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    contact_id: Mapped[str] = mapped_column(String(40))
    inbox_id: Mapped[str] = mapped_column(String(40))
    # The assignee when the conversation was resolved: whose service is being rated.
    agent_id: Mapped[str | None] = mapped_column(String(40))
    # Which resolution is rated: a reopened and again resolved conversation can be rated again.
    resolved_at: Mapped[datetime]
    rating: Mapped[int]
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("conversation_id", "resolved_at"),
        Index("ix_csat_ratings_tenant_id_created_at", "tenant_id", "created_at"),
    )
