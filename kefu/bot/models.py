"""ORM tables of the bot domain."""

from __future__ import annotations
