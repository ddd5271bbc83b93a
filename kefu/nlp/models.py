"""ORM tables of the nlp domain."""

from __future__ import annotations
