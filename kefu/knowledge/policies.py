"""Pure rules of the knowledge domain: the bot's answer/choices/handoff decision, status transitions, limits."""

from __future__ import annotations

from typing import Literal

Decision = Literal["answer", "choices", "handoff"]

# Confidence is lexical coverage of the question by the entry (see ``index.py``). Measured on the demo shop's
# held-out questions: a correct top hit has a median confidence near 0.5; off-topic chatter stays under 0.2.
ANSWER_AT = 0.45
ANSWER_MARGIN = 0.08  # a clear winner: two close candidates are offered as choices instead
CHOICES_AT = 0.22
CHOICES = 3

STATUSES = ("draft", "published", "archived")
TRANSITIONS = {"draft": {"published", "archived"}, "published": {"draft", "archived", "published"},
               "archived": {"draft", "published"}}

MAX_CHUNK_CHARS = 1500  # articles longer than this are indexed (and imported) in chunks
MAX_IMPORT_ROWS = 20_000
MAX_ANSWER_CHARS = 20_000


def decide(confidences: list[float]) -> Decision:
    """Answer from the best entry when confident and clearly ahead, offer choices when middling, else hand off."""
    if not confidences or confidences[0] < CHOICES_AT:
        return "handoff"
    runner_up = confidences[1] if len(confidences) > 1 else 0.0
    if confidences[0] >= ANSWER_AT and confidences[0] - runner_up >= ANSWER_MARGIN:
        return "answer"
    return "choices"


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, set())


def chunk_text(text: str, limit: int = MAX_CHUNK_CHARS) -> list[str]:
    """Split a long document at paragraph (then sentence) boundaries into pieces of at most ``limit`` chars."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for paragraph in [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]:
        parts = [paragraph]
        if len(paragraph) > limit:
            parts, buf = [], ""
            for sentence in _sentences(paragraph):
                while len(sentence) > limit:  # one enormous sentence: hard cut
                    parts.append(sentence[:limit])
                    sentence = sentence[limit:]
                if len(buf) + len(sentence) > limit and buf:
                    parts.append(buf)
                    buf = ""
                buf += sentence
            if buf:
                parts.append(buf)
        for part in parts:
            if current and len(current) + 2 + len(part) > limit:
                pieces.append(current)
                current = part
            else:
                current = f"{current}\n\n{part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _sentences(paragraph: str) -> list[str]:
    out, buf = [], ""
    for ch in paragraph:
        buf += ch
        if ch in "。！？!?.;；\n":
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return out
