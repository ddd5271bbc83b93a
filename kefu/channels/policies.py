"""Pure rules of the web chat channel: what a widget visitor may see."""

from __future__ import annotations

from typing import Any

from kefu.events.types import VISITOR_VISIBLE, DomainEvent

# Message fields a customer may see; sender ids (agent user ids, contact ids) stay internal.
_PUBLIC_MESSAGE_FIELDS = ("id", "conversation_id", "sender_kind", "body", "content_type", "attachments",
                          "client_message_id", "delivery_status", "created_at")
# Other top-level event fields a customer may see (typing indicators); anything else stays internal.
_PUBLIC_EXTRA_FIELDS = ("conversation_id", "typing", "sender_kind", "read")


def visible_to_visitor(event: DomainEvent) -> bool:
    """True for events a customer may receive; internal notes (private messages) never are."""
    if event.type not in VISITOR_VISIBLE:
        return False
    message = event.data.get("message") if isinstance(event.data, dict) else None
    return not (isinstance(message, dict) and message.get("private"))


def public_message(message: dict[str, Any]) -> dict[str, Any]:
    """The customer's view of a message payload."""
    return {key: message.get(key) for key in _PUBLIC_MESSAGE_FIELDS}


def visitor_view(event: DomainEvent) -> tuple[dict[str, Any], str | None] | None:
    """Return (frame, inbox id) of what a widget visitor may see of ``event``, or None if nothing.

    Private notes never leave; conversation payloads are cut down to id and status because tags, priority
    and assignment are the shop's internal business.
    """
    if event.contact_id is None or not visible_to_visitor(event):
        return None
    data = event.data
    view: dict[str, Any] = {}
    message = data.get("message")
    if isinstance(message, dict):
        view["message"] = public_message(message)
    conversation = data.get("conversation")
    inbox_id = None
    if isinstance(conversation, dict):
        inbox_id = conversation.get("inbox_id")
        view["conversation"] = {"id": conversation.get("id"), "status": conversation.get("status")}
    for key in _PUBLIC_EXTRA_FIELDS:  # e.g. typing indicators
        if key in data:
            view[key] = data[key]
    frame = event.frame()
    frame["data"] = view
    return frame, inbox_id
