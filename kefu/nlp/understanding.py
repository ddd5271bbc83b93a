"""The result types of language understanding, shared by the pipeline, the API, the CLI and the bot.

Plain frozen dataclasses rather than pydantic models: the pipeline builds thousands of them per second in
batch mode, and validation would cost more than the classification itself. ``to_dict`` gives the JSON
shape of the ``kefu nlu predict`` contract; the API re-validates through ``schemas.UnderstandingRead``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Language = Literal["zh", "en", "mixed", "und"]
Polarity = Literal["negative", "neutral", "positive"]
EmotionLabel = Literal["anger", "anxiety", "sadness", "joy", "surprise", "neutral"]
EMOTION_LABELS: tuple[str, ...] = ("anger", "anxiety", "sadness", "joy", "surprise", "neutral")

# Longest text we analyse; the rest is cut off and ``truncated`` is set so callers can tell the customer.
MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Entity:
    """One span found in the text. ``start``/``end`` are character offsets into ``Understanding.text``.

    ``type`` is one of: order_number, phone, email, tracking_number, amount, date, product.
    ``value`` is the surface text; ``normalized`` the canonical form (E.164 phone, ISO date, decimal
    string amount, catalogue SKU...) and ``attributes`` extra facts (carrier, currency, marketplace...).
    """

    type: str
    value: str
    start: int
    end: int
    normalized: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "start": self.start, "end": self.end,
                "normalized": self.normalized, "attributes": dict(self.attributes)}


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Emotion:
    """Dominant emotion with its score in [0, 1]; ``scores`` holds every label of EMOTION_LABELS."""

    label: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    cues: tuple[str, ...] = ()  # why: the words/punctuation that drove the score, for agents and tuning


@dataclass(frozen=True, slots=True)
class Sentiment:
    """Polarity with a signed score in [-1, 1] (negative below zero)."""

    polarity: str
    score: float


@dataclass(frozen=True, slots=True)
class Understanding:
    """Everything the pipeline understood about one message."""

    text: str
    language: str
    intent: str
    confidence: float
    intents: tuple[IntentScore, ...]
    entities: tuple[Entity, ...]
    emotion: Emotion
    sentiment: Sentiment
    truncated: bool = False
    original_length: int = 0
    tokens: tuple[str, ...] = ()
    model_version: str = "default"

    def entities_of(self, type_: str) -> list[Entity]:
        """Entities of one type, in text order."""
        return [e for e in self.entities if e.type == type_]

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """The ``kefu nlu predict`` JSON object; ``full`` adds ranked intents, emotion scores and notes."""
        out: dict[str, Any] = {
            "text": self.text,
            "language": self.language,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "entities": [e.to_dict() for e in self.entities],
            "emotion": {"label": self.emotion.label, "score": round(self.emotion.score, 4)},
            "sentiment": {"polarity": self.sentiment.polarity, "score": round(self.sentiment.score, 4)},
        }
        if self.truncated:
            out["truncated"] = True
            out["note"] = f"text truncated from {self.original_length} to {len(self.text)} characters"
        if full:
            out["intents"] = [{"intent": s.intent, "confidence": round(s.confidence, 4)} for s in self.intents]
            out["emotion"]["scores"] = {k: round(v, 4) for k, v in self.emotion.scores.items()}
            out["emotion"]["cues"] = list(self.emotion.cues)
            out["model_version"] = self.model_version
        return out
