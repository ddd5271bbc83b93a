"""ORM tables of the knowledge domain."""

from __future__ import annotations
