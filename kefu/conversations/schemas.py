"""Conversation and message shapes for the API, the event payloads and the widget."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kefu.core.schemas import ReadModel

ConversationStatus = Literal["open", "pending", "resolved", "closed"]
OwnerKind = Literal["bot", "queue", "agent"]
SenderKind = Literal["customer", "agent", "bot", "system"]


class Attachment(BaseModel):
    """A file on a message: ``{"id": "att_…"}`` of an upload (the server fills in the stored metadata), or
    inline metadata (``name``, ``content_type``, ``size``, ``url``) of a file hosted elsewhere."""

    id: str | None = Field(default=None, min_length=1, max_length=40)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    content_type: str | None = Field(default=None, min_length=1, max_length=100)
    size: int | None = Field(default=None, ge=0, le=100 * 1024 * 1024)
    width: int | None = Field(default=None, ge=1, le=100_000)
    height: int | None = Field(default=None, ge=1, le=100_000)
    url: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _id_or_metadata(self) -> Attachment:
        if self.id is None and (self.name is None or self.content_type is None or self.size is None):
            raise ValueError("an attachment needs an id, or name, content_type and size")
        return self


class MessageBase(BaseModel):
    body: str = Field(default="", max_length=10_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)


class MessageCreate(MessageBase):
    """A message or internal note posted by an agent or an integration."""

    private: bool = False
    client_message_id: str | None = Field(default=None, min_length=1, max_length=80)

    model_config = ConfigDict(json_schema_extra={"examples": [{"body": "您好，您的包裹已发出。", "client_message_id": "c-1"}]})


class MessageRead(ReadModel):
    id: str
    conversation_id: str
    sender_kind: SenderKind
    sender_id: str | None
    body: str
    content_type: str
    attachments: list[dict[str, Any]]
    private: bool
    client_message_id: str | None
    delivery_status: str
    created_at: datetime


class ConversationRead(ReadModel):
    id: str
    inbox_id: str
    contact_id: str
    channel: str
    status: ConversationStatus
    owner_kind: OwnerKind
    assignee_id: str | None
    priority: int
    subject: str | None
    locale: str | None
    last_message_at: datetime | None
    last_message_preview: str | None
    message_count: int
    tags: list[str] = Field(default_factory=list)
    unread_count: int | None = Field(default=None, description="Customer messages after the caller's read mark "
                                     "(in lists for users; null otherwise)")
    version: int
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class ConversationUpdate(BaseModel):
    """Fields an agent may change; send ``If-Match: <version>`` to guard against concurrent edits.

    ``assignee_id: null`` unassigns (back to the queue); absent fields stay as they are.
    """

    status: ConversationStatus | None = None
    assignee_id: str | None = Field(default=None, max_length=40)
    priority: int | None = Field(default=None, ge=0, le=10)
    subject: str | None = Field(default=None, max_length=300)

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "pending", "priority": 2}]})


class MessagePage(BaseModel):
    """Messages oldest first. ``next_cursor`` continues forwards; ``has_more`` also says older ones exist
    when paging backwards with ``before``."""

    data: list[MessageRead]
    next_cursor: str | None = None
    has_more: bool = False


class ReadReceiptCreate(BaseModel):
    """Everything of the other side up to and including this message has been seen."""

    up_to_message_id: str = Field(min_length=1, max_length=40)

    model_config = ConfigDict(json_schema_extra={"examples": [{"up_to_message_id": "msg_01jd0000000000000000000000"}]})


class ReadReceiptRead(BaseModel):
    message_ids: list[str]
