"""Which agent sockets an event is for: pure rules shared by live fan-out (hub.py) and replay (gateway.py).

Supervisors, admins and integrations (API keys) watch the whole tenant and get every event. A plain agent
works their own conversations and the shared queue, so to keep the fan-out of the chat hot path O(1) per
message instead of O(agents), they get:

* ``message.created`` of a conversation assigned to someone only if they are the assignee; of an unassigned
  conversation (queue or bot owned) always, as the "unassigned" view shows those to everyone;
* routing offers (``routing.offer.*``) only when offered to them (the workspace shows nobody else's);
* everything else (conversation created/updated, assignment and status changes, read receipts, routing
  tasks, agents and queue statistics, ...), as before, so every list and badge stays current. A colleague's
  conversation opened in the "all" view loads its timeline over REST when it is opened.
"""

from __future__ import annotations

from kefu.events.types import MESSAGE_CREATED, ROUTING_OFFER_CREATED, ROUTING_OFFER_UPDATED, DomainEvent

# Roles whose sockets get every event of the tenant; any other user role gets the narrowed view above.
WATCH_ALL_ROLES = frozenset({"admin", "supervisor"})
_OFFERS = frozenset({ROUTING_OFFER_CREATED, ROUTING_OFFER_UPDATED})


def watches_all(*, principal_kind: str, role: str | None) -> bool:
    """True if this credential's sockets get every event of the tenant (integrations, supervisors, admins)."""
    return principal_kind != "user" or role in WATCH_ALL_ROLES


def agent_recipient(event: DomainEvent) -> str | None:
    """The user id of the only plain agent ``event`` is for, or None when it is for every agent."""
    if event.type == MESSAGE_CREATED:
        conversation = event.data.get("conversation")
        if isinstance(conversation, dict):
            assignee = conversation.get("assignee_id")
            return assignee if isinstance(assignee, str) and assignee else None
        return None
    if event.type in _OFFERS:
        agent_id = event.data.get("agent_id")
        if not agent_id and isinstance(event.data.get("offer"), dict):
            agent_id = event.data["offer"].get("agent_id")
        return agent_id if isinstance(agent_id, str) and agent_id else None
    return None


def agent_may_see(event: DomainEvent, *, user_id: str | None, watch_all: bool) -> bool:
    """Whether an agent socket of this user gets ``event`` (the tenant is checked by the caller)."""
    if watch_all:
        return True
    recipient = agent_recipient(event)
    return recipient is None or recipient == user_id
