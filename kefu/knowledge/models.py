"""ORM tables of the knowledge domain: entries with their versions, and the questions the bot was asked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class KbEntry(Base):
    """An FAQ entry or article. Content columns hold the latest version (maybe a draft); what search and the
    bot use is the ``published_version`` row of ``kb_entry_versions``. Counters are per-entry analytics."""

    __tablename__ = "kb_entries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    external_key: Mapped[str | None] = mapped_column(String(200))  # the id an import file gave it
    kind: Mapped[str] = mapped_column(String(20), default="faq")  # faq | article
    status: Mapped[str] = mapped_column(String(20), default="draft")  # draft | published | archived
    language: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    channels: Mapped[list[Any]] = mapped_column(default=list)  # empty: every channel
    product_ids: Mapped[list[Any]] = mapped_column(default=list)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    title: Mapped[str] = mapped_column(String(500), default="")
    question: Mapped[str] = mapped_column(String(500))
    paraphrases: Mapped[list[Any]] = mapped_column(default=list)
    answer: Mapped[str] = mapped_column(Text)
    chunks: Mapped[list[Any]] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(default=1)
    published_version: Mapped[int | None]
    published_at: Mapped[datetime | None]
    views: Mapped[int] = mapped_column(default=0)
    answers_given: Mapped[int] = mapped_column(default=0)
    helpful: Mapped[int] = mapped_column(default=0)
    not_helpful: Mapped[int] = mapped_column(default=0)
    handoffs: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("tenant_id", "external_key"),
        Index("ix_kb_entries_tenant_id_status", "tenant_id", "status"),
    )


class KbEntryVersion(Base):
    """An immutable snapshot of an entry's content, one per save."""

    __tablename__ = "kb_entry_versions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    entry_id: Mapped[str] = mapped_column(ForeignKey("kb_entries.id"))
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(500), default="")
    question: Mapped[str] = mapped_column(String(500))
    paraphrases: Mapped[list[Any]] = mapped_column(default=list)
    answer: Mapped[str] = mapped_column(Text)
    chunks: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("entry_id", "version"),)


class KbQuery(Base):
    """A question the bot answered from the KB (or could not): the raw material of gap mining."""

    __tablename__ = "kb_queries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    question: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str | None] = mapped_column(String(40))
    conversation_id: Mapped[str | None] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(20))  # answer | choices | handoff
    entry_id: Mapped[str | None] = mapped_column(String(40))
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    feedback: Mapped[str | None] = mapped_column(String(20))  # helpful | not_helpful
    handed_off: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_kb_queries_tenant_id_created_at", "tenant_id", "created_at"),)
