"""Typed domain events as they travel on the bus and out to WebSocket clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kefu.core.clock import isoformat

# Stable event type names (documented in docs/api.md).
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
CONTACT_UPDATED = "contact.updated"
CONTACT_MERGED = "contact.merged"
CONTACT_UNMERGED = "contact.unmerged"
TYPING = "conversation.typing"
KB_ENTRY_CHANGED = "kb.entry_changed"
# Routing (ACD). Offer events carry the offered agent's user id in data["agent_id"]: clients show them only to
# that agent. Queue statistics are meant for supervisors' screens.
ROUTING_TASK_CREATED = "routing.task.created"
ROUTING_TASK_UPDATED = "routing.task.updated"
ROUTING_OFFER_CREATED = "routing.offer.created"
ROUTING_OFFER_UPDATED = "routing.offer.updated"
ROUTING_AGENT_UPDATED = "routing.agent.updated"
ROUTING_QUEUE_STATS = "routing.queue.stats"
# Commerce: an order's known state changed; an order action finished; a parcel is stuck at a node.
ORDER_UPDATED = "order.updated"
ORDER_ACTION_COMPLETED = "order.action_completed"
SHIPMENT_STUCK = "shipment.stuck"
CSAT_SUBMITTED = "csat.submitted"
CSAT_UPDATED = "csat.updated"
# Internal: a session or API key stopped being valid; nodes close its sockets. Never sent to clients.
CREDENTIALS_REVOKED = "auth.credentials_revoked"
INTERNAL = frozenset({CREDENTIALS_REVOKED})

# Events a widget visitor may see (filtered further to their own conversation and non-private messages).
VISITOR_VISIBLE = frozenset({MESSAGE_CREATED, MESSAGE_UPDATED, CONVERSATION_UPDATED, TYPING})


@dataclass(frozen=True, slots=True)
class DomainEvent:
    id: int
    type: str
    tenant_id: str
    data: dict[str, Any]
    created_at: datetime
    conversation_id: str | None = None
    contact_id: str | None = None
    origin: str | None = field(default=None, compare=False)

    def frame(self) -> dict[str, Any]:
        """The WebSocket frame for this event."""
        return {"type": self.type, "id": self.id, "created_at": isoformat(self.created_at), "data": self.data}

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "tenant_id": self.tenant_id,
            "conversation_id": self.conversation_id,
            "contact_id": self.contact_id,
            "data": self.data,
            "created_at": isoformat(self.created_at),
            "origin": self.origin,
        }

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> DomainEvent:
        return cls(
            id=int(raw["id"]),
            type=raw["type"],
            tenant_id=raw["tenant_id"],
            conversation_id=raw.get("conversation_id"),
            contact_id=raw.get("contact_id"),
            data=raw["data"],
            created_at=datetime.fromisoformat(raw["created_at"].replace("Z", "+00:00")),
            origin=raw.get("origin"),
        )
