"""REST endpoints of language understanding: analyse text, per-tenant custom intents and retraining."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["nlu"])
