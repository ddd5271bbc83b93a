"""ORM tables of the bot domain.

The bot keeps its memory in the database, never in a node's RAM: any node may answer the next message of a
conversation, and a restarted node must find what the bot knew.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class BotFlow(Base):
    """A tenant's version of one flow (YAML as written, so comments and order survive a round trip)."""

    __tablename__ = "bot_flows"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    updated_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BotInboxSettings(Base):
    """Whether the bot answers first in an inbox, and how it talks and when it hands off there."""

    __tablename__ = "bot_inbox_settings"

    inbox_id: Mapped[str] = mapped_column(ForeignKey("inboxes.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DialogueState(Base):
    """What the bot knows inside one conversation: the active flow, its slots, strikes, what it did."""

    __tablename__ = "bot_dialogue_states"

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    contact_id: Mapped[str] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(8))
    flow: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    last_flow: Mapped[str | None] = mapped_column(String(64))  # for "and the other one?" after a flow ended
    slots: Mapped[dict[str, Any]] = mapped_column(default=dict)
    low_confidence_strikes: Mapped[int] = mapped_column(default=0)
    turns: Mapped[list[Any]] = mapped_column(default=list)  # the last few exchanges, for the agent's summary
    handed_off: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContactContext(Base):
    """What carries over between a contact's conversations on any channel: the orders they talked about."""

    __tablename__ = "bot_contact_contexts"

    contact_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    current_order_id: Mapped[str | None] = mapped_column(String(80))
    mentioned_order_ids: Mapped[list[Any]] = mapped_column(default=list)  # most recent last
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime]


class BotTurn(Base):
    """One customer message the bot answers; the primary key is the claim that only one node answers it."""

    __tablename__ = "bot_turns"

    message_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    node_id: Mapped[str] = mapped_column(String(80))
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None]
    flow: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20))  # answered | handoff | skipped
    reply_message_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_bot_turns_conversation_id_created_at", "conversation_id", "created_at"),)


class Handoff(Base):
    """A conversation the bot gave to people, with why, the routing attributes and the agent's summary."""

    __tablename__ = "bot_handoffs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    reason: Mapped[str] = mapped_column(String(40))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    task_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_bot_handoffs_tenant_id_conversation_id", "tenant_id", "conversation_id"),)


class ServiceRequest(Base):
    """A request the bot took on for the shop that the order system has no call for (chase a shipment, an
    invoice): recorded so people act on it and the customer's second ask finds the first."""

    __tablename__ = "bot_service_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(30))  # urge_shipment | invoice
    order_ref: Mapped[str] = mapped_column(String(40))
    order_number: Mapped[str] = mapped_column(String(80))
    contact_id: Mapped[str] = mapped_column(String(40))
    conversation_id: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_bot_service_requests_tenant_id_order_ref", "tenant_id", "order_ref"),
    )
