"""Conversation and message shapes for the API, the event payloads and the widget."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kefu.core.clock import isoformat
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

    def json_payload(self) -> dict[str, Any]:
        """``model_dump(mode="json")``, built directly: every new message's event and its sender's ack carry it,
        and pydantic calls ``ReadModel._ts`` once per field (tests compare the two)."""
        payload = dict(self.__dict__)
        payload["attachments"] = [dict(item) for item in self.attachments]
        payload["created_at"] = isoformat(self.created_at)
        return payload


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
    disposition: str | None = Field(default=None, description="How the current resolution ended (a code of "
                                    "`GET /api/v1/dispositions`); null unless resolved or closed after one")


class ConversationUpdate(BaseModel):
    """Fields an agent may change; send ``If-Match: <version>`` to guard against concurrent edits.

    ``assignee_id: null`` unassigns (back to the queue); absent fields stay as they are.
    """

    status: ConversationStatus | None = None
    assignee_id: str | None = Field(default=None, max_length=40)
    priority: int | None = Field(default=None, ge=0, le=10)
    subject: str | None = Field(default=None, max_length=300)
    disposition: str | None = Field(default=None, max_length=40, description="With `status: resolved`, or on a "
                                    "resolved conversation: how it ended; `null` clears it")

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "pending", "priority": 2},
                                                              {"status": "resolved", "disposition": "solved"}]})


class ConversationResolve(BaseModel):
    """Optional body of ``POST /conversations/{id}/resolve``: how the conversation ended."""

    disposition: str | None = Field(default=None, min_length=1, max_length=40,
                                    description="A code of `GET /api/v1/dispositions`, e.g. `solved`")

    model_config = ConfigDict(json_schema_extra={"examples": [{"disposition": "solved"}]})


class DispositionCodeRead(BaseModel):
    """One way a resolution can end, with its labels in both languages and in the caller's."""

    code: str
    label: str = Field(description="In the caller's language")
    label_zh: str
    label_en: str
    position: int
    active: bool
    builtin: bool = Field(description="One of the built-in codes (possibly relabelled or switched off)")


class DispositionCodeList(BaseModel):
    data: list[DispositionCodeRead]


class DispositionCodeCreate(BaseModel):
    """A tenant's own disposition code (lower_snake), with its labels and place in the list."""

    code: str = Field(min_length=1, max_length=40)
    label_zh: str = Field(min_length=1, max_length=100)
    label_en: str = Field(min_length=1, max_length=100)
    position: int = Field(default=100, ge=0, le=1000)
    active: bool = True

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"code": "ticket_created", "label_zh": "已转工单", "label_en": "Ticket created", "position": 70}]})


class DispositionCodeUpdate(BaseModel):
    """Relabel a code, move it, or switch it off (``active: false``; conversations that have it keep it)."""

    label_zh: str | None = Field(default=None, min_length=1, max_length=100)
    label_en: str | None = Field(default=None, min_length=1, max_length=100)
    position: int | None = Field(default=None, ge=0, le=1000)
    active: bool | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"label_en": "Spam or abuse", "active": False}]})


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
