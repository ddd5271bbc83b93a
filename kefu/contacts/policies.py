"""Pure rules about contacts and their identities."""

from __future__ import annotations

# Following ``merged_into_id`` links stops here; a longer chain means corrupted data, not a real history.
MAX_MERGE_HOPS = 32


def normalise_identity(kind: str, value: str) -> str:
    """The stored form of an identity value, so the same email typed twice is one identity."""
    value = value.strip()
    return value.lower() if kind == "email" else value
