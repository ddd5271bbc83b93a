"""Knowledge-base shapes: entries (Base/Create/Update/Read), answers for the bot, suggestions, imports, gaps."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from kefu.core.schemas import ReadModel

Language = Literal["zh", "en"]
Kind = Literal["faq", "article"]
Status = Literal["draft", "published", "archived"]
ImportFormat = Literal["json", "jsonl", "csv", "markdown"]

_Text = Field(min_length=1, max_length=500, pattern=r"\S")


def _strip_nul(value: object) -> object:
    # PostgreSQL text cannot hold NUL characters (it would fail the write); they mean nothing in an FAQ.
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [v.replace("\x00", "") if isinstance(v, str) else v for v in value]
    return value


class EntryBase(BaseModel):
    kind: Kind = "faq"
    language: Language
    category: str = Field(default="", max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=30)
    channels: list[str] = Field(default_factory=list, max_length=20,
                                description="Channels where the entry may be shown; empty means all")
    product_ids: list[str] = Field(default_factory=list, max_length=200)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    title: str = Field(default="", max_length=500)

    _no_nul = field_validator("*", mode="before")(classmethod(lambda cls, v: _strip_nul(v)))

    @model_validator(mode="after")
    def _window(self) -> EntryBase:
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class EntryCreate(EntryBase):
    """A new entry; it starts as a draft unless ``publish`` is true."""

    question: str = _Text
    paraphrases: list[str] = Field(default_factory=list, max_length=50)
    answer: str = Field(min_length=1, max_length=1_000_000, pattern=r"\S")
    key: str | None = Field(default=None, max_length=200, description="Your own id (import/export round trips)")
    publish: bool = False

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "language": "zh", "category": "returns", "question": "支持七天无理由退货吗？",
        "paraphrases": ["买了不喜欢可以退吗"], "answer": "自签收次日起 7 天内可申请无理由退货。",
        "tags": ["售后"], "publish": True}]})


class EntryUpdate(BaseModel):
    """Fields to change (absent ones stay); every save is a new version. Send ``If-Match: <version>``."""

    question: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"\S")
    paraphrases: list[str] | None = Field(default=None, max_length=50)
    answer: str | None = Field(default=None, min_length=1, max_length=1_000_000, pattern=r"\S")
    title: str | None = Field(default=None, max_length=500)
    category: str | None = Field(default=None, max_length=100)
    tags: list[str] | None = Field(default=None, max_length=30)
    channels: list[str] | None = Field(default=None, max_length=20)
    product_ids: list[str] | None = Field(default=None, max_length=200)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None

    _no_nul = field_validator("*", mode="before")(classmethod(lambda cls, v: _strip_nul(v)))

    model_config = ConfigDict(json_schema_extra={"examples": [{"answer": "自签收次日起 7 天内可申请无理由退货（生鲜除外）。"}]})


class EntryAnalytics(BaseModel):
    views: int
    answers_given: int
    helpful: int
    not_helpful: int
    handoffs: int


class EntryRead(ReadModel):
    id: str
    key: str | None
    kind: str
    status: str
    language: str
    category: str
    tags: list[str]
    channels: list[str]
    product_ids: list[str]
    valid_from: datetime | None
    valid_until: datetime | None
    title: str
    question: str
    paraphrases: list[str]
    answer: str
    chunk_count: int
    version: int
    published_version: int | None
    published_at: datetime | None
    analytics: EntryAnalytics
    created_at: datetime
    updated_at: datetime


class EntryVersionRead(ReadModel):
    version: int
    title: str
    question: str
    paraphrases: list[str]
    answer: str
    created_by: str | None
    created_at: datetime


class RenderedEntry(BaseModel):
    id: str
    question: str
    answer_html: str = Field(description="The published answer as sanitised HTML")
    version: int


class SearchHit(BaseModel):
    id: str
    question: str
    matched: str = Field(description="The question, paraphrase or chunk that matched best")
    snippet: str = Field(description="HTML-escaped text with matches wrapped in <mark>")
    score: float
    confidence: float = Field(ge=0, le=1)
    category: str
    language: str
    product_ids: list[str] = Field(default_factory=list, description="Catalogue products the entry is linked to")


class SearchResults(BaseModel):
    query: str
    data: list[SearchHit]


class AnswerRequest(BaseModel):
    """A customer's question the bot has no flow for."""

    question: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    language: Language | None = None
    channel: str | None = Field(default=None, max_length=40)
    conversation_id: str | None = Field(default=None, max_length=40)

    _no_nul = field_validator("*", mode="before")(classmethod(lambda cls, v: _strip_nul(v)))

    model_config = ConfigDict(json_schema_extra={"examples": [{"question": "退货运费谁出？", "language": "zh",
                                                               "channel": "webchat"}]})


class AnswerChoice(BaseModel):
    id: str
    question: str
    answer_html: str
    confidence: float


class KnowledgeAnswer(BaseModel):
    """What the bot should do: answer from ``best``, offer ``choices``, or hand off to a human."""

    id: str | None = Field(default=None, description="Answer id for feedback/handoff (kbq_…); None if unrecorded")
    question: str
    language: str
    decision: Literal["answer", "choices", "handoff"]
    best: AnswerChoice | None
    choices: list[AnswerChoice]


class AnswerFeedback(BaseModel):
    """The customer's verdict on an answer: ``helpful: false`` is "that did not help"."""

    helpful: bool

    model_config = ConfigDict(json_schema_extra={"examples": [{"helpful": False}]})


class AnswerChoiceRequest(BaseModel):
    """The entry the customer picked among the choices an answer offered."""

    entry_id: str = Field(min_length=1, max_length=40)

    model_config = ConfigDict(json_schema_extra={"examples": [{"entry_id": "kb_01HZX3V8J6Q9R2T4W5Y7Z8A1B2"}]})


class AnswerHandoff(BaseModel):
    """Record that the conversation went to a human after this answer."""

    reason: str = Field(default="", max_length=200)

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "customer asked for a human"}]})


class Suggestion(SearchHit):
    answer_html: str = Field(description="Ready to insert into the reply box")


class Suggestions(BaseModel):
    conversation_id: str
    query: str = Field(description="The customer messages used as the query")
    data: list[Suggestion]


class ImportRequest(BaseModel):
    """A file's content to import; rows with errors are reported by line and skipped, the rest imported."""

    format: ImportFormat
    content: str = Field(min_length=1, max_length=20_000_000)
    publish: bool = Field(default=False, description="Publish imported entries at once")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "format": "jsonl", "publish": True,
        "content": '{"id": "ship-1", "language": "en", "question": "When will my order ship?", '
                   '"answer": "Within 48 hours."}\n'}]})


class ImportRowError(BaseModel):
    line: int
    code: str
    message: str
    key: str | None


class ImportReport(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[ImportRowError]
    entry_ids: list[str]


class GapProposal(BaseModel):
    """A cluster of questions nobody could answer, proposed as a new entry."""

    proposed_question: str
    language: str
    count: int
    last_asked_at: datetime
    score: float = Field(description="Frequency weighted by recency (a question today counts 1, a week ago 0.5)")
    examples: list[str]
    not_helpful_entry_ids: list[str]


class GapReport(BaseModel):
    data: list[GapProposal]
