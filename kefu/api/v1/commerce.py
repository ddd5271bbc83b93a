"""REST endpoints of the commerce domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["commerce"])
