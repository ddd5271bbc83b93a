"""REST endpoints of the bot domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["bot"])
