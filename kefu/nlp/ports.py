"""The seam for intent classifiers: the default n-gram model, or an embedding / LLM backend plugged in later."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class IntentBackend(Protocol):
    """Ranks intents for prepared texts.

    ``texts`` are already cleaned and folded (see ``kefu.nlp.language.fold``) with entities masked
    (order numbers become ``<order>``...), so a backend sees what it was trained on. ``predict`` returns,
    for each text, a list of ``(intent, probability)`` sorted best first whose probabilities are
    calibrated enough for the out-of-scope threshold of the pipeline.
    """

    version: str

    @property
    def labels(self) -> Sequence[str]: ...

    def predict(self, texts: Sequence[str], *, top_k: int = 5) -> list[list[tuple[str, float]]]: ...


class IntentTrainer(Protocol):
    """Builds a backend from labelled examples (defaults plus a tenant's own)."""

    def train(self, examples: Sequence[tuple[str, str]]) -> IntentBackend: ...
