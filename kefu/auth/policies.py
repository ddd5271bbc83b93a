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
    }
)

_AGENT = frozenset({"conversations:read", "conversations:write", "contacts:read", "contacts:write", "inboxes:read", "users:read"})

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": ALL_SCOPES,
    "supervisor": _AGENT | {"audit:read"},
    "agent": _AGENT,
}


def unknown_scopes(scopes: list[str] | set[str]) -> list[str]:
    """The requested scopes that do not exist, sorted (empty when all are known)."""
    return sorted(s for s in set(scopes) if s not in ALL_SCOPES)
