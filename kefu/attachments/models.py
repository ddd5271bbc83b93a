"""Uploaded files (attachments): metadata here, bytes in the ``AttachmentStore``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    # Who uploaded it: an agent (user id), an integration (API key id) or a widget visitor (contact id).
    uploader_kind: Mapped[str] = mapped_column(String(20))  # agent | bot | customer
    uploader_id: Mapped[str] = mapped_column(String(40))
    inbox_id: Mapped[str | None] = mapped_column(String(40))  # set for visitor uploads
    # The conversation whose message carries it; a customer may download it only if that message was public.
    conversation_id: Mapped[str | None] = mapped_column(String(40))
    visible_to_customer: Mapped[bool] = mapped_column(default=False)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None]
    height: Mapped[int | None]
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    # When a message first carried it. Never-sent uploads (NULL) are deleted after the retention window,
    # including agents' uploads made for a conversation (``conversation_id`` set) but never sent.
    attached_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_attachments_tenant_id_id", "tenant_id", "id"),
        # Upload budgets: a visitor's and an inbox's recent uploads.
        Index("ix_attachments_tenant_id_uploader_id_created_at", "tenant_id", "uploader_id", "created_at"),
        Index("ix_attachments_tenant_id_inbox_id_created_at", "tenant_id", "inbox_id", "created_at"),
        Index("ix_attachments_attached_at_created_at", "attached_at", "created_at"),
        Index("ix_attachments_storage_key", "storage_key"),  # copies share their source's file
    )


class AttachmentUsage(Base):
    """Bytes a tenant has stored in uploads: raised by each upload, lowered when the sweep deletes files.

    A counter row (not a SUM over the uploads) so the quota check is one conditional UPDATE that concurrent
    uploads on any node cannot both slip past."""

    __tablename__ = "attachment_usage"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
