"""Shared pydantic bases for the API's read models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer

from kefu.core.clock import isoformat


class ReadModel(BaseModel):
    """Built from ORM rows; timestamps as RFC 3339 UTC with ``Z`` and millisecond precision."""

    model_config = ConfigDict(from_attributes=True)

    @field_serializer("*", when_used="json")
    def _ts(self, value: Any) -> Any:
        return isoformat(value) if isinstance(value, datetime) else value
