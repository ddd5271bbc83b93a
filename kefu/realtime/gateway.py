"""WebSocket endpoints for agents and widget visitors (to be filled in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
