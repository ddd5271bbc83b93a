"""REST endpoints of the routing domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["routing"])
