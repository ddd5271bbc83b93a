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


# How a resolution ended, offered when an agent resolves: (code, 中文, English). Tenants may relabel these,
# switch them off or add their own (``disposition_codes`` rows); codes are stable because reports filter on them.
DEFAULT_DISPOSITIONS: tuple[tuple[str, str, str], ...] = (
    ("solved", "已解决", "Solved"),
    ("not_solved", "未解决", "Not solved"),
    ("follow_up", "需跟进", "Needs follow-up"),
    ("no_reply", "客户未回复", "Customer did not reply"),
    ("duplicate", "重复咨询", "Duplicate"),
    ("spam", "垃圾信息", "Spam"),
)
DISPOSITION_CODE_CHARS = 40


def valid_disposition_code(code: str) -> bool:
    """Codes are lower_snake like every enum of the API: ``[a-z0-9_]``, starting with a letter."""
    return (0 < len(code) <= DISPOSITION_CODE_CHARS and code[0].isascii() and code[0].isalpha()
            and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in code))
