"""Request and response models of the nlp API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kefu.core.schemas import ReadModel

_NAME = r"^[a-z][a-z0-9_]{1,63}$"


class ProductIn(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = Field(default_factory=list, max_length=20)


class AnalyseRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"text": "你们到底什么时候发货!!! 订单2026112212345678", "now": "2026-11-22T08:00:00Z"},
        {"text": "where is my order #1001? I bought the air fryer last Monday",
         "products": [{"sku": "AF-1", "name": "air fryer", "aliases": ["空气炸锅"]}], "full": True},
    ]})

    text: str = Field(max_length=100_000, description="The message; longer than 2,000 characters is truncated")
    now: datetime | None = Field(None, description="Reference time for relative dates (default: now)")
    products: list[ProductIn] = Field(default_factory=list, max_length=2000, description="Catalogue to recognise")
    full: bool = Field(False, description="Also return ranked intents, emotion scores and cues")


class AnalyseBatchRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"texts": ["我的快递到哪了", "third time I'm asking, where is my refund?"]},
    ]})

    texts: list[str] = Field(min_length=1, max_length=1000)
    now: datetime | None = None
    products: list[ProductIn] = Field(default_factory=list, max_length=2000)
    full: bool = False

    @field_validator("texts")
    @classmethod
    def _bounded(cls, texts: list[str]) -> list[str]:
        if any(len(t) > 100_000 for t in texts):
            raise ValueError("each text must be at most 100000 characters")
        return texts


class EntityRead(BaseModel):
    type: str
    value: str
    start: int
    end: int
    normalized: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class EmotionRead(BaseModel):
    label: str
    score: float
    scores: dict[str, float] | None = None
    cues: list[str] | None = None


class SentimentRead(BaseModel):
    polarity: str
    score: float


class IntentScoreRead(BaseModel):
    intent: str
    confidence: float


class UnderstandingRead(BaseModel):
    text: str
    language: str
    intent: str
    confidence: float
    entities: list[EntityRead]
    emotion: EmotionRead
    sentiment: SentimentRead
    truncated: bool = False
    note: str | None = None
    intents: list[IntentScoreRead] | None = None
    model_version: str | None = None


class UnderstandingList(BaseModel):
    data: list[UnderstandingRead]


class IntentCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "gift_wrapping", "description": "Customer asks for gift wrapping",
         "examples": ["能帮我包装成礼物吗", "可以礼品包装吗", "can you gift wrap it", "do you offer gift wrapping"]},
    ]})

    name: str = Field(pattern=_NAME, description="lower_snake name, unique per tenant, not a default intent")
    description: str = Field("", max_length=500)
    examples: list[str] = Field(default_factory=list, max_length=500)


class IntentRead(ReadModel):
    id: str | None = Field(None, description="Null for the default taxonomy")
    name: str
    description: str = ""
    builtin: bool
    example_count: int = 0
    created_at: datetime | None = None


class IntentList(BaseModel):
    data: list[IntentRead]


class ExamplesCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"texts": ["包装成礼物送人", "please wrap it as a present"]},
    ]})

    texts: list[str] = Field(min_length=1, max_length=500)


class TenantExamplesCreate(ExamplesCreate):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"intent": "track_order", "texts": ["我的宝贝咋还没到", "yo where my stuff at"]},
    ]})

    intent: str = Field(pattern=_NAME)


class ExampleRead(ReadModel):
    id: str
    intent: str
    intent_id: str | None
    text: str
    language: str
    created_at: datetime


class ExampleList(BaseModel):
    data: list[ExampleRead]


class OrderPatternCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "my_shop", "regex": "MS-\\d{8}", "marketplace": "own_shop"},
    ]})

    name: str = Field(pattern=_NAME)
    regex: str = Field(min_length=2, max_length=300)
    marketplace: str = Field(min_length=1, max_length=40)


class OrderPatternRead(ReadModel):
    id: str
    name: str
    regex: str
    marketplace: str
    created_at: datetime


class ModelRead(ReadModel):
    version: int
    status: str = Field(description="default (never trained) | training (a retrain is running) | ready")
    example_count: int
    custom_intents: int
    trained_at: datetime | None
    loaded_version: int | None = Field(None, description="Version loaded in the node that answered")
