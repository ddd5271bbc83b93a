"""ORM tables of the commerce domain."""

from __future__ import annotations
