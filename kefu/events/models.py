"""The transactional outbox: every domain event is a row written in the same transaction as its change.

The row's integer id is the event id clients see on the WebSocket and resume from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base, BigIntPK


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(40))
    contact_id: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_events_tenant_id_id", "tenant_id", "id"),
        Index("ix_outbox_events_conversation_id_id", "conversation_id", "id"),
        Index("ix_outbox_events_published_at", "published_at"),
    )
