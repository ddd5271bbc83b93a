"""Conversations, their messages (including internal notes) and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    inbox_id: Mapped[str] = mapped_column(ForeignKey("inboxes.id"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | pending | resolved | closed
    owner_kind: Mapped[str] = mapped_column(String(20), default="queue")  # bot | queue | agent
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    priority: Mapped[int] = mapped_column(default=0)
    subject: Mapped[str | None] = mapped_column(String(300))
    locale: Mapped[str | None] = mapped_column(String(8))
    last_message_at: Mapped[datetime | None]
    last_message_preview: Mapped[str | None] = mapped_column(String(200))
    message_count: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    # How the last resolution ended (a code of the tenant's disposition list); null while not resolved.
    disposition: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        Index("ix_conversations_tenant_id_status_id", "tenant_id", "status", "id"),
        Index("ix_conversations_tenant_id_id", "tenant_id", "id"),
        Index("ix_conversations_tenant_id_disposition_id", "tenant_id", "disposition", "id"),
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    sender_kind: Mapped[str] = mapped_column(String(20))  # customer | agent | bot | system
    sender_id: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(20), default="text")
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    private: Mapped[bool] = mapped_column(default=False)  # internal note, never shown to the customer
    client_message_id: Mapped[str | None] = mapped_column(String(80))
    delivery_status: Mapped[str] = mapped_column(String(20), default="sent")  # sent | delivered | read | failed
    created_at: Mapped[datetime]

    __table_args__ = (
        # Idempotent sends: the same client id from the same sender in a conversation is one message.
        UniqueConstraint("conversation_id", "sender_kind", "client_message_id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
    )


class ConversationTag(Base):
    __tablename__ = "conversation_tags"

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    created_at: Mapped[datetime]


class ConversationReadMarker(Base):
    """How far each agent has read a conversation: their unread count is the customer's messages after it."""

    __tablename__ = "conversation_read_markers"

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    last_read_message_id: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime]


class DispositionCode(Base):
    """A tenant's change to the built-in disposition list: a new code, new labels, or a code switched off.

    A tenant without rows uses ``policies.DEFAULT_DISPOSITIONS`` as they are.
    """

    __tablename__ = "disposition_codes"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(100))
    label_en: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
