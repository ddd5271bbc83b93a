"""Contact shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kefu.conversations.schemas import _Read

IdentityKind = Literal["visitor", "external", "email", "phone", "wechat_openid", "device", "marketplace_buyer"]


class IdentityIn(BaseModel):
    kind: IdentityKind
    value: str = Field(min_length=1, max_length=254)
    verified: bool = False


class IdentityRead(_Read):
    id: str
    kind: str
    value: str
    verified: bool
    created_at: datetime


class ContactBase(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    vip_level: int = Field(default=0, ge=0, le=10)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ContactCreate(ContactBase):
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "王小明", "phone": "+8613800138000",
        "identities": [{"kind": "external", "value": "shop-customer-1001"}]}]})


class ContactUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    vip_level: int | None = Field(default=None, ge=0, le=10)
    attributes: dict[str, Any] | None = None


class ContactRead(_Read):
    id: str
    name: str | None
    email: str | None
    phone: str | None
    vip_level: int
    attributes: dict[str, Any]
    merged_into_id: str | None
    identities: list[IdentityRead] = Field(default_factory=list)
    version: int
    created_at: datetime
    updated_at: datetime


class ContactMergeCreate(BaseModel):
    """Merge ``source_contact_id`` into the contact of the URL; reversible through the merge id."""

    source_contact_id: str = Field(min_length=1, max_length=40)


class ContactMergeRead(_Read):
    id: str
    source_contact_id: str
    target_contact_id: str
    moved_identity_ids: list[str]
    moved_conversation_ids: list[str]
    merged_by: str | None
    merged_at: datetime
    reverted_at: datetime | None
