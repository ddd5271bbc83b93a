"""Contacts (one person) with many identities (visitor id, phone, email, shop customer id, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    vip_level: Mapped[int] = mapped_column(default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    merged_into_id: Mapped[str | None] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContactIdentity(Base):
    __tablename__ = "contact_identities"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # visitor | external | email | phone | ...
    value: Mapped[str] = mapped_column(String(254))
    verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("tenant_id", "kind", "value"),)


class ContactMerge(Base):
    """What one merge moved, so that it can be reverted exactly."""

    __tablename__ = "contact_merges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    source_contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    target_contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    moved_identity_ids: Mapped[list[Any]] = mapped_column(default=list)
    moved_conversation_ids: Mapped[list[Any]] = mapped_column(default=list)
    merged_by: Mapped[str | None] = mapped_column(String(40))
    merged_at: Mapped[datetime]
    reverted_at: Mapped[datetime | None]
    reverted_by: Mapped[str | None] = mapped_column(String(40))
