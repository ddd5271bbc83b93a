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


# System message (i18n key) the customer sees when a conversation changes status this way.
_STATUS_MESSAGES = {
    ("open", "resolved"): "system.conversation_resolved",
    ("pending", "resolved"): "system.conversation_resolved",
    ("resolved", "open"): "system.conversation_reopened",
}

TAG_MAX_CHARS = 64


def status_message_key(current: str, new: str) -> str | None:
    return _STATUS_MESSAGES.get((current, new))


def normalise_tag(tag: str) -> str:
    """Tags compare case-insensitively (``VIP`` and ``vip`` are one tag); whitespace is collapsed."""
    return " ".join(tag.split()).lower()


def valid_tag(tag: str) -> bool:
    return 0 < len(tag) <= TAG_MAX_CHARS and tag.isprintable()
