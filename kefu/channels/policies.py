"""Pure rules of the web chat channel: what a widget visitor may see."""

from __future__ import annotations

from kefu.events.types import VISITOR_VISIBLE, DomainEvent


def visible_to_visitor(event: DomainEvent) -> bool:
    """True for events a customer may receive; internal notes (private messages) never are."""
    if event.type not in VISITOR_VISIBLE:
        return False
    message = event.data.get("message") if isinstance(event.data, dict) else None
    return not (isinstance(message, dict) and message.get("private"))
