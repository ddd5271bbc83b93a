"""Pure rules for canned responses: shortcut syntax, tags, and filling ``{{placeholders}}``."""

from __future__ import annotations

import re
from collections.abc import Mapping

SHORTCUT_MAX_CHARS = 32
SHARED = "shared"
TAG_MAX_CHARS = 64
# Placeholders the server knows how to fill for a conversation; others come only from the caller's values.
KNOWN_PLACEHOLDERS = ("customer.name", "customer.email", "customer.phone", "agent.name", "order.id",
                      "conversation.id", "inbox.name")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")


def normalise_shortcut(raw: str) -> str | None:
    """Lowercase; letters (any script), digits, ``_``, ``-`` and ``.``; a leading ``/`` is dropped. None if invalid."""
    value = raw.strip().removeprefix("/").lower()
    if not 0 < len(value) <= SHORTCUT_MAX_CHARS:
        return None
    if not all(ch.isalnum() or ch in "_-." for ch in value):
        return None
    return value


def normalise_tags(tags: list[str]) -> list[str] | None:
    """Collapse whitespace, lowercase, drop duplicates (order kept); None if a tag is empty or too long."""
    out: list[str] = []
    for tag in tags:
        value = " ".join(tag.split()).lower()
        if not 0 < len(value) <= TAG_MAX_CHARS or not value.isprintable():
            return None
        if value not in out:
            out.append(value)
    return out


def pick_body(body_zh: str, body_en: str, wanted: str) -> tuple[str, str]:
    """(body, its locale): the wanted language, else whichever one exists."""
    if wanted == "zh" and body_zh:
        return body_zh, "zh"
    if wanted == "en" and body_en:
        return body_en, "en"
    return (body_zh, "zh") if body_zh else (body_en, "en")


def render(template: str, values: Mapping[str, str | None]) -> tuple[str, list[str]]:
    """Replace ``{{key}}`` with its value; unknown or empty ones become "" and are listed (sorted, once)."""
    missing: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        value = values.get(key)
        if value is None or value == "":
            missing.add(key)
            return ""
        return value

    return _PLACEHOLDER.sub(fill, template), sorted(missing)
