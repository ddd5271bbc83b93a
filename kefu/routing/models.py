"""ORM tables of the routing domain."""

from __future__ import annotations
