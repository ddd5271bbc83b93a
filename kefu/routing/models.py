"""ORM tables of the routing domain: agent profiles, queues, workflows, tasks, offers, presence history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base, BigIntPK


class AgentProfile(Base):
    """Routing attributes of one user (``user_id`` is the agent id) and their presence."""

    __tablename__ = "routing_agents"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    skills: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"returns": 3}
    languages: Mapped[list[Any]] = mapped_column(default=list)
    groups: Mapped[list[Any]] = mapped_column(default=list)
    vip: Mapped[bool] = mapped_column(default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    capacities: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"voice": 1, "chat": 5, "email": 10}
    presence: Mapped[str] = mapped_column(String(20), default="offline")  # available | busy | away | offline
    presence_reason: Mapped[str | None] = mapped_column(String(40))  # lunch, training, missed_offer …
    presence_since: Mapped[datetime]
    last_offered_at: Mapped[datetime | None]  # longest idle = oldest last offer
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_routing_agents_tenant_id_presence", "tenant_id", "presence"),)


class Queue(Base):
    __tablename__ = "routing_queues"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    target_expression: Mapped[str | None] = mapped_column(Text)
    offer_timeout_seconds: Mapped[int] = mapped_column(default=30)
    auto_accept: Mapped[bool] = mapped_column(default=False)
    wrapup_seconds: Mapped[int] = mapped_column(default=0)
    sl_target_seconds: Mapped[int] = mapped_column(default=20)
    sl_goal_percent: Mapped[int] = mapped_column(default=80)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Workflow(Base):
    __tablename__ = "routing_workflows"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    is_default: Mapped[bool] = mapped_column(default=False)
    filters: Mapped[list[Any]] = mapped_column(default=list)
    default_targets: Mapped[list[Any]] = mapped_column(default=list)
    sticky_seconds: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Task(Base):
    """A piece of work that needs a human: waiting → offered → assigned → completed, or canceled."""

    __tablename__ = "routing_tasks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    conversation_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # Set while the task is live (waiting/offered/assigned) and cleared after: the unique key makes
    # "one live task per conversation" hold even for two nodes enqueueing the same conversation at once.
    live_conversation_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    contact_id: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20), default="chat")
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    priority: Mapped[int] = mapped_column(default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enriched: Mapped[bool] = mapped_column(default=False)
    workflow_id: Mapped[str | None] = mapped_column(String(40))
    queue_id: Mapped[str | None] = mapped_column(String(40))
    step: Mapped[int | None]
    pinned_queue_id: Mapped[str | None] = mapped_column(String(40))
    pinned_agent_id: Mapped[str | None] = mapped_column(String(40))
    preferred_agent_id: Mapped[str | None] = mapped_column(String(40))
    declined: Mapped[dict[str, Any]] = mapped_column(default=dict)  # agent id -> epoch seconds until
    agent_id: Mapped[str | None] = mapped_column(String(40))  # offered to / assigned to
    offer_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    assigned_at: Mapped[datetime | None]
    wait_seconds: Mapped[float | None]  # creation → assignment, kept for service-level and ASA figures
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(40))  # resolved | closed | abandoned | canceled …
    wrapup_until: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_routing_tasks_tenant_id_status_priority_created_at", "tenant_id", "status", "priority", "created_at"),
        Index("ix_routing_tasks_tenant_id_agent_id_status", "tenant_id", "agent_id", "status"),
        Index("ix_routing_tasks_tenant_id_contact_id", "tenant_id", "contact_id"),
        Index("ix_routing_tasks_status_tenant_id", "status", "tenant_id"),  # which tenants have work
    )


class Offer(Base):
    """A reservation: one agent may take one task until ``expires_at``."""

    __tablename__ = "routing_offers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    task_id: Mapped[str] = mapped_column(ForeignKey("routing_tasks.id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(40))
    queue_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|accepted|rejected|timed_out|canceled
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_routing_offers_status_expires_at", "status", "expires_at"),
        Index("ix_routing_offers_tenant_id_agent_id_status", "tenant_id", "agent_id", "status"),
    )


class PresenceChange(Base):
    """History of presence, for not-ready reporting (time spent at lunch, in training …)."""

    __tablename__ = "routing_presence_history"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    agent_id: Mapped[str] = mapped_column(String(40))
    presence: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_routing_presence_history_tenant_id_agent_id_at", "tenant_id", "agent_id", "at"),)
