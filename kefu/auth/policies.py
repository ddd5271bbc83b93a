"""Roles and scopes: one vocabulary for both users and API keys, checked on every endpoint."""

from __future__ import annotations

ROLES = ("admin", "supervisor", "agent")

ALL_SCOPES = frozenset(
    {
        "conversations:read",
        "conversations:write",
        "contacts:read",
        "contacts:write",
        "inboxes:read",
        "inboxes:write",
        "users:read",
        "users:write",
        "api_keys:read",
        "api_keys:write",
        "audit:read",
        "orders:read",
        "orders:write",
        "orders:refund",
        "commerce:admin",
        "knowledge:read",
        "knowledge:feedback",
        "knowledge:write",
        "routing:read",
        "routing:respond",
        "routing:write",
        "canned_responses:read",
        "canned_responses:write",
        "canned_responses:share",
        "csat:read",
        "bot:read",
        "bot:write",
        "nlu:read",
        "nlu:write",
    }
)

_AGENT = frozenset({"conversations:read", "conversations:write", "contacts:read", "contacts:write", "inboxes:read", "users:read",
                    "canned_responses:read", "canned_responses:write",
                    "routing:read", "routing:respond"})

# Agents read the knowledge base (suggestions, search) and record bot answers with the customers' verdicts
# (knowledge:feedback moves the analytics counters, so a read-only key cannot); supervisors and admins also
# curate it.
_AGENT = _AGENT | {"knowledge:read", "knowledge:feedback"}

# Orders: agents look up orders and cancel, re-address or open returns; money (refunds, price protection)
# needs a supervisor; connectors and after-sales rules are for admins.
_AGENT = _AGENT | {"orders:read", "orders:write"}

# The bot: agents read its handoff summaries; supervisors and admins edit flows and per-inbox settings.
_AGENT = _AGENT | {"bot:read"}

# Language understanding: agents may analyse text; supervisors and admins train custom intents.
_AGENT = _AGENT | {"nlu:read"}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": ALL_SCOPES,
    "supervisor": _AGENT | {"orders:refund", "knowledge:write", "routing:write", "audit:read", "canned_responses:share", "csat:read",
                                "bot:write", "nlu:write"},
    "agent": _AGENT,
}


def unknown_scopes(scopes: list[str] | set[str]) -> list[str]:
    """The requested scopes that do not exist, sorted (empty when all are known)."""
    return sorted(s for s in set(scopes) if s not in ALL_SCOPES)
