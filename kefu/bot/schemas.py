"""API shapes of the bot: flows, per-inbox settings, the handoff summary an agent reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kefu.core.schemas import ReadModel

_TRACK_ORDER_EXAMPLE = """name: track_order
intents: [track_order]
title: {zh: 查询物流, en: Track an order}
slots:
  - name: order
    type: order
    prompt: {zh: "您想查询哪一笔订单？{choices}", en: "Which order? {choices}"}
skill: track_order
replies:
  ok: {zh: "订单 {order_number} 由{carrier}承运：{status}。\\n{timeline}", en: "Order {order_number} is with {carrier}: {status}.\\n{timeline}"}
  default: {zh: "订单 {order_number} 暂无物流信息。", en: "No tracking yet for order {order_number}."}
"""


class FlowProblem(BaseModel):
    path: str
    problem: str


class FlowSummary(BaseModel):
    name: str
    title: dict[str, str]
    intents: list[str]
    skill: str | None
    origin: Literal["builtin", "tenant"]
    version: int


class FlowRead(FlowSummary):
    source: str
    slots: list[dict[str, Any]]
    confirm: dict[str, str] | None
    replies: dict[str, dict[str, str]]
    updated_at: datetime | None = None


class FlowList(BaseModel):
    data: list[FlowSummary]
    skills: list[str] = Field(description="Skills a flow may call")


class FlowCreate(BaseModel):
    """A new flow for intents the built-in flows do not cover (the name is inside the YAML)."""

    source: str = Field(min_length=1, max_length=50_000, description="The flow as YAML")

    model_config = ConfigDict(json_schema_extra={"examples": [{"source": _TRACK_ORDER_EXAMPLE.replace(
        "name: track_order", "name: track_order_express")}]})


class FlowUpdate(BaseModel):
    """The whole flow as YAML; replaces the tenant's version (or overrides the built-in one). ``If-Match``."""

    source: str = Field(min_length=1, max_length=50_000, description="The flow as YAML")

    model_config = ConfigDict(json_schema_extra={"examples": [{"source": _TRACK_ORDER_EXAMPLE}]})


class HandoffSettings(BaseModel):
    low_confidence: float = Field(default=0.45, ge=0, le=1)
    low_confidence_strikes: int = Field(default=2, ge=1, le=10)
    anger: float = Field(default=0.6, ge=0, le=1)
    anxiety: float = Field(default=0.75, ge=0, le=1)
    vip_level: int = Field(default=3, ge=0, le=10, description="Contacts at or above go to people; 0 = off")
    extra_sensitive_words: list[str] = Field(default_factory=list, max_length=200)


class BotSettingsBase(BaseModel):
    enabled: bool = False
    default_language: Literal["zh", "en"] = "zh"
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    knowledge_fallback: bool = True


class BotSettingsUpdate(BotSettingsBase):
    """The bot's settings for one inbox (the whole object). Send ``If-Match: <version>``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "enabled": True, "default_language": "zh", "handoff": {"anger": 0.6, "vip_level": 3}}]})


class BotSettingsRead(BotSettingsBase):
    inbox_id: str
    version: int
    updated_at: datetime | None = None


class HandoffRead(ReadModel):
    """Why the bot handed a conversation to people, the routing attributes and the summary agents read."""

    id: str
    conversation_id: str
    reason: str
    attributes: dict[str, Any]
    summary: dict[str, Any]
    task_id: str | None
    created_at: datetime


class BotConversationRead(BaseModel):
    """The bot's view of one conversation: its dialogue state and every handoff, newest last."""

    conversation_id: str
    language: str | None
    flow: str | None
    slots: dict[str, Any]
    handed_off: bool
    turns: list[dict[str, Any]]
    handoffs: list[HandoffRead]
