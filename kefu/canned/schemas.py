"""Canned response shapes: create, update, read and the rendering of one for a conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kefu.core.schemas import ReadModel

Scope = Literal["shared", "personal"]


class CannedResponseBase(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body_zh: str = Field(default="", max_length=5000)
    body_en: str = Field(default="", max_length=5000)
    tags: list[str] = Field(default_factory=list, max_length=10)


class CannedResponseCreate(CannedResponseBase):
    """``shortcut`` is what agents type after ``/`` in the composer; unique within its scope."""

    scope: Scope = "personal"
    shortcut: str = Field(min_length=1, max_length=32)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scope": "shared", "shortcut": "ship", "title": "发货时间",
        "body_zh": "{{customer.name}}您好，订单 {{order.id}} 将在 48 小时内发货。",
        "body_en": "Hi {{customer.name}}, order {{order.id}} ships within 48 hours.", "tags": ["shipping"]}]})


class CannedResponseUpdate(BaseModel):
    """Fields to change (send ``If-Match: <version>``); absent fields stay."""

    shortcut: str | None = Field(default=None, min_length=1, max_length=32)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body_zh: str | None = Field(default=None, max_length=5000)
    body_en: str | None = Field(default=None, max_length=5000)
    tags: list[str] | None = Field(default=None, max_length=10)

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "发货时间（大促期间）"}]})


class CannedResponseRead(ReadModel):
    id: str
    scope: Scope
    owner_id: str | None
    shortcut: str
    title: str
    body_zh: str
    body_en: str
    tags: list[str]
    version: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class CannedRenderRequest(BaseModel):
    """Fill the placeholders for one conversation; ``values`` adds or overrides them (e.g. the order shown)."""

    conversation_id: str = Field(min_length=1, max_length=40)
    locale: Literal["zh", "en"] | None = None
    values: dict[str, str] = Field(default_factory=dict, max_length=20)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "conversation_id": "conv_01jd0000000000000000000000", "locale": "zh", "values": {"order.id": "SO-1024"}}]})


class CannedRenderRead(BaseModel):
    body: str
    locale: Literal["zh", "en"]
    missing: list[str] = Field(description="Placeholders with no value; rendered as empty text")
