"""One place to ask the time, always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(dt: datetime | None) -> str | None:
    """Format as RFC 3339 UTC with ``Z``, millisecond precision."""
    if dt is None:
        return None
    if dt.tzinfo is UTC:  # as utcnow() makes them: the text up to the offset
        return dt.isoformat(timespec="milliseconds")[:23] + "Z"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
