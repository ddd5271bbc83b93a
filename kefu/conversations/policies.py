"""Pure rules about conversations."""

from __future__ import annotations

# Which status changes an agent may make. A customer message reopens resolved conversations (not closed).
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"pending", "resolved", "closed"}),
    "pending": frozenset({"open", "resolved", "closed"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset(),
}

PREVIEW_CHARS = 120


def can_transition(current: str, new: str) -> bool:
    return new == current or new in ALLOWED_TRANSITIONS.get(current, frozenset())


def preview(body: str, attachments: list[dict] | None = None) -> str:
    text = " ".join(body.split())
    if not text and attachments:
        text = "[" + str(attachments[0].get("name", "attachment")) + "]"
    return text[:PREVIEW_CHARS]
