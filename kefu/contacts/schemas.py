"""Contact shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kefu.conversations.schemas import ConversationRead, MessageRead
from kefu.core.schemas import ReadModel

IdentityKind = Literal["visitor", "external", "email", "phone", "wechat_openid", "device", "marketplace_buyer"]


class IdentityIn(BaseModel):
    """An identity to attach; ``verified`` marks one the shop has vouched for (it blocks automatic merges)."""

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=254, pattern=r"\S")
    verified: bool = False

    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "email", "value": "xiaoming@example.com"}]})


class IdentityRead(ReadModel):
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
    """Fields to change (absent ones stay); send ``If-Match: <version>`` to refuse stale edits."""

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    vip_level: int | None = Field(default=None, ge=0, le=10)
    attributes: dict[str, Any] | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"vip_level": 3, "attributes": {"city": "杭州"}}]})


class ContactRead(ReadModel):
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

    model_config = ConfigDict(json_schema_extra={"examples": [{"source_contact_id": "ct_01jd0000000000000000000000"}]})


class ContactMergeRead(ReadModel):
    id: str
    source_contact_id: str
    target_contact_id: str
    moved_identity_ids: list[str]
    moved_conversation_ids: list[str]
    merged_by: str | None
    merged_at: datetime
    reverted_at: datetime | None
    reverted_by: str | None


class ConversationExport(ConversationRead):
    messages: list[MessageRead] = Field(default_factory=list)


class ContactExport(BaseModel):
    """Everything stored about one contact (a data-subject export), including internal notes."""

    exported_at: str
    contact: ContactRead
    conversations: list[ConversationExport]
