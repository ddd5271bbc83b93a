"""Tenant shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kefu.core.schemas import ReadModel


class TenantCreate(BaseModel):
    slug: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1, max_length=200)
    default_locale: str = Field(default="zh", pattern=r"^(zh|en)$")


class TenantRead(ReadModel):
    id: str
    slug: str
    name: str
    default_locale: str
    created_at: datetime
