"""Inboxes: a tenant's entry points (a web chat widget now; email, social and phone later)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class Inbox(Base):
    __tablename__ = "inboxes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    channel_type: Mapped[str] = mapped_column(String(20))  # webchat
    # Shared with the shop's backend to sign customer identity tokens (never shown to visitors).
    identity_secret: Mapped[str] = mapped_column(String(128))
    require_identity: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # greeting, colour, position, locale
    is_active: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class IdentityNonce(Base):
    """Nonces of identity tokens already used, so a captured token cannot be replayed."""

    __tablename__ = "identity_nonces"

    inbox_id: Mapped[str] = mapped_column(ForeignKey("inboxes.id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    used_at: Mapped[datetime]
    expires_at: Mapped[datetime]
