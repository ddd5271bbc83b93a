"""Inbox and web chat widget shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kefu.conversations.schemas import Attachment
from kefu.core.schemas import ReadModel


class InboxSettings(BaseModel):
    """How the widget looks and greets; shown to visitors."""

    greeting_zh: str | None = Field(default=None, max_length=500)
    greeting_en: str | None = Field(default=None, max_length=500)
    color: str = Field(default="#1677ff", pattern=r"^#[0-9a-fA-F]{6}$")
    position: Literal["right", "left"] = "right"
    locale: Literal["auto", "zh", "en"] = "auto"
    # Accept Intercom-style static hashes (HMAC of the customer id alone). They cannot be replay-checked.
    accept_static_identity_hash: bool = True
    launcher_label_zh: str | None = Field(default=None, max_length=40)
    launcher_label_en: str | None = Field(default=None, max_length=40)
    csat_enabled: bool = True  # ask the customer for a 1-5 rating when a conversation is resolved


class InboxAppearanceUpdate(BaseModel):
    """Widget look fields to change; absent fields keep their value. Send ``If-Match: <version>``."""

    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    position: Literal["right", "left"] | None = None
    greeting_zh: str | None = Field(default=None, max_length=500)
    greeting_en: str | None = Field(default=None, max_length=500)
    launcher_label_zh: str | None = Field(default=None, max_length=40)
    launcher_label_en: str | None = Field(default=None, max_length=40)
    csat_enabled: bool | None = None
    locale: Literal["auto", "zh", "en"] | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "color": "#e4393c", "position": "left", "greeting_zh": "您好！有什么可以帮您？", "greeting_en": "Hi! How can we help?",
        "launcher_label_zh": "联系客服", "launcher_label_en": "Chat with us", "csat_enabled": True}]})


class InboxCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    channel_type: Literal["webchat"] = "webchat"
    require_identity: bool = False
    settings: InboxSettings = Field(default_factory=InboxSettings)

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "官网在线客服", "settings": {"color": "#e4393c"}}]})


class InboxUpdate(BaseModel):
    """Fields to change; ``settings`` replaces the whole settings object. Send ``If-Match: <version>``."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    require_identity: bool | None = None
    settings: InboxSettings | None = None
    is_active: bool | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"require_identity": True}]})


class InboxRead(ReadModel):
    id: str
    name: str
    channel_type: str
    require_identity: bool
    settings: dict[str, Any]
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class InboxSecretRead(InboxRead):
    """Returned to admins only: the secret the shop's backend signs identity tokens with."""

    identity_secret: str


class WidgetSessionCreate(BaseModel):
    """Start or resume a widget session. Send the stored ``visitor_token`` on reload to keep the history."""

    inbox_id: str = Field(min_length=1, max_length=40)
    visitor_token: str | None = Field(default=None, max_length=2000)
    identity_token: str | None = Field(default=None, max_length=1000)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    identity_hash: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    locale: Literal["zh", "en"] | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"inbox_id": "inb_01jd0000000000000000000000"}]})


class WidgetConfig(BaseModel):
    inbox_id: str
    name: str
    greeting: str
    color: str
    position: str
    locale: str
    launcher_label: str = ""
    csat_enabled: bool = True


class WidgetSessionRead(BaseModel):
    visitor_token: str
    visitor_id: str
    contact_id: str
    verified: bool
    conversation_id: str | None
    expires_at: str
    widget: WidgetConfig


class WidgetMessageCreate(BaseModel):
    """A customer's message. ``client_message_id`` (unique per message, e.g. a UUID) makes retries safe."""

    body: str = Field(default="", max_length=10_000)
    client_message_id: str = Field(min_length=1, max_length=80)
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "body": "我的订单什么时候发货？", "client_message_id": "3f0c9a52-6a8e-4a57-9d0e-1f5d4b7c2e11"}]})


class WidgetEventFrame(BaseModel):
    """The same frame the WebSocket sends: ``{type, id, created_at, data}``."""

    type: str
    id: int
    created_at: str | None
    data: dict[str, Any]


class WidgetEvents(BaseModel):
    """Long-poll answer; send ``last_event_id`` as ``after`` next time (it also skips events you may not see)."""

    events: list[WidgetEventFrame]
    last_event_id: int
