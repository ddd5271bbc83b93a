"""CSAT shapes: the widget's rating, what agents see, and the report."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kefu.core.schemas import ReadModel


class CsatCreate(BaseModel):
    """A visitor's rating of their resolved conversation (again within the window: an update)."""

    conversation_id: str = Field(min_length=1, max_length=40)
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "conversation_id": "conv_01jd0000000000000000000000", "rating": 5, "comment": "很快就解决了"}]})


class CsatRead(ReadModel):
    id: str
    conversation_id: str
    inbox_id: str
    agent_id: str | None
    rating: int
    comment: str | None
    resolved_at: datetime
    created_at: datetime
    updated_at: datetime


class CsatPrompt(BaseModel):
    """Whether the widget should show the rating form now, and for which conversation."""

    ask: bool
    conversation_id: str | None = Field(default=None, description="The visitor's latest conversation here, "
                                        "when it is resolved and not rated yet")
    resolved_at: datetime | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ask": True, "conversation_id": "conv_01jd0000000000000000000000", "resolved_at": "2026-12-06T10:00:00Z"}]})


class CsatPage(BaseModel):
    data: list[CsatRead]
    next_cursor: str | None = None


Period = Literal["day", "week", "month"]


class CsatBucket(BaseModel):
    count: int
    average: str | None = Field(description="Mean rating as a decimal string with two places; null if no ratings")
    distribution: dict[str, int] = Field(description='Ratings per score, "1" to "5"')


class CsatPeriodBucket(CsatBucket):
    period: str


class CsatAgentBucket(CsatBucket):
    agent_id: str | None


class CsatReport(CsatBucket):
    by_period: list[CsatPeriodBucket]
    by_agent: list[CsatAgentBucket]
