"""Opaque, time-ordered ids with a type prefix (``conv_01J…``), as the API style asks.

The id after the prefix is a ULID (48-bit millisecond timestamp, 80 random bits, 26 characters of Crockford's
base32, here in lower case). Generated here rather than by a ULID package: the chat hot path makes one per
message and per event, and the package's monotonic generator was 9.5% of the group committer's samples in a
profile of a saturated node (``bench/chat_roundtrip.py --profile``, docs/benchmarks.md); this one's cost
per id is printed by ``bench/group_commit.py``.
"""

from __future__ import annotations

import os
import threading
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)  # ten bits → two characters
_RANDOM_BITS = 80

_lock = threading.Lock()
_last = 0  # the last value handed out (timestamp << 80 | randomness)


def ulid_text(value: int) -> str:
    """The 26-character text of a 128-bit ULID value: 130 bits (two leading zeros) as 13 pairs of characters."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def _next_value() -> int:
    """A new ULID value, strictly greater than the last one this process made: in the same millisecond (or if
    the clock stepped back) the previous value plus one, so ids also sort in creation order within a
    millisecond, as message lists rely on."""
    global _last
    now = time.time_ns() // 1_000_000
    with _lock:
        if now > _last >> _RANDOM_BITS:
            _last = (now << _RANDOM_BITS) | int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
        else:
            _last += 1
        return _last


def new_id(prefix: str) -> str:
    """Return a new id such as ``msg_01jd…``; lexical order follows creation order."""
    return f"{prefix}_{ulid_text(_next_value())}"


def has_prefix(value: str, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix + "_") and len(value) == len(prefix) + 27
