"""The NLU pipeline (clean → language → entities → intent → emotion) and the in-process model registry.

The registry holds the default pipeline and one pipeline per tenant that has its own intents or
examples. Retraining builds a new model off to the side and swaps the reference in one assignment, so
messages being analysed keep the old model and the next ones get the new one, without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kefu.nlp.emotion import analyse_emotion, anger_probability
from kefu.nlp.entities import DEFAULT_ORDER_PATTERNS, OrderPattern, Product, extract_entities
from kefu.nlp.intents import OUT_OF_SCOPE, load_or_train_default, prepare
from kefu.nlp.language import clean, detect_language, fold, tokenize
from kefu.nlp.ports import IntentBackend
from kefu.nlp.understanding import MAX_CHARS, IntentScore, Understanding

# Below this calibrated probability the top intent is not trusted and the answer is out_of_scope.
DEFAULT_OOS_THRESHOLD = 0.30
# Batches bigger than this are split so that one huge request cannot hold a giant feature matrix.
_CHUNK = 2048


@dataclass(frozen=True)
class NluPipeline:
    """A fitted intent backend plus the per-tenant entity settings."""

    backend: IntentBackend
    order_patterns: tuple[OrderPattern, ...] = DEFAULT_ORDER_PATTERNS
    oos_threshold: float = DEFAULT_OOS_THRESHOLD
    version: str = "default"

    def analyse(self, text: str, **kwargs: Any) -> Understanding:
        """Understand one message (see ``analyse_batch`` for the keyword arguments)."""
        return self.analyse_batch([text], **kwargs)[0]

    def analyse_batch(
        self,
        texts: Sequence[str],
        *,
        now: datetime | date | None = None,
        products: Iterable[Product | str | dict[str, Any]] | None = None,
        order_patterns: Sequence[OrderPattern] | None = None,
        top_k: int = 5,
    ) -> list[Understanding]:
        """Understand many messages at once; the intent model runs once per chunk, which is what makes it fast.

        ``order_patterns`` replaces the pipeline's patterns for this call; ``products`` is the catalogue to
        recognise; relative dates resolve against ``now``.
        """
        products = tuple(products) if products is not None else None
        patterns = tuple(order_patterns) if order_patterns is not None else self.order_patterns
        out: list[Understanding] = []
        for i in range(0, len(texts), _CHUNK):
            out.extend(self._chunk(texts[i:i + _CHUNK], now=now, products=products, patterns=patterns,
                                   top_k=top_k))
        return out

    def _chunk(self, texts: Sequence[str], *, now: datetime | date | None, products: Any,
               patterns: tuple[OrderPattern, ...], top_k: int) -> list[Understanding]:
        prepared: list[tuple[str, str, bool, int]] = []
        for raw in texts:
            if not isinstance(raw, str):
                raw = "" if raw is None else str(raw)
            original_length = len(raw)
            truncated = original_length > MAX_CHARS
            text = clean(raw[:MAX_CHARS] if truncated else raw)
            prepared.append((text, fold(text), truncated, original_length))
        features = [prepare(text) for text, _, _, _ in prepared]
        # Nothing to classify (empty, emoji-only, punctuation): out_of_scope without asking the model.
        todo = [i for i, f in enumerate(features) if any(ch.isalnum() for ch in f)]
        ranked: dict[int, list[tuple[str, float]]] = {}
        if todo:
            for i, r in zip(todo, self.backend.predict([features[i] for i in todo], top_k=top_k), strict=True):
                ranked[i] = r
        anger = dict(zip(todo, anger_probability([prepared[i][1] for i in todo]), strict=True))
        results = []
        for i, (text, folded, truncated, original_length) in enumerate(prepared):
            scores = ranked.get(i) or [(OUT_OF_SCOPE, 1.0)]
            intent, confidence = scores[0]
            if confidence < self.oos_threshold:
                intent = OUT_OF_SCOPE
            emotion, sentiment = analyse_emotion(text, folded, anger_p=anger.get(i, 0.0))
            entities = extract_entities(text, folded=folded, now=now, order_patterns=patterns, products=products)
            results.append(Understanding(
                text=text,
                language=detect_language(text),
                intent=intent,
                confidence=confidence,
                intents=tuple(IntentScore(n, p) for n, p in scores),
                entities=tuple(entities),
                emotion=emotion,
                sentiment=sentiment,
                truncated=truncated,
                original_length=original_length,
                tokens=tuple(tokenize(folded)) if len(folded) <= 300 else (),
                model_version=self.version,
            ))
        return results


class ModelRegistry:
    """Default and per-tenant pipelines of this process; swaps are single reference assignments."""

    def __init__(self) -> None:
        self._default: NluPipeline | None = None
        # tenant id -> (model version, hash of its training data, pipeline)
        self._tenants: dict[str, tuple[int, str | None, NluPipeline]] = {}
        self._lock = threading.Lock()

    def default(self) -> NluPipeline:
        """The default pipeline, trained (or loaded from the cache) on first use."""
        if self._default is None:
            with self._lock:
                if self._default is None:
                    backend = load_or_train_default()
                    self._default = NluPipeline(backend=backend, version=backend.version)
        return self._default

    def has_default(self) -> bool:
        return self._default is not None

    def for_tenant(self, tenant_id: str | None) -> NluPipeline:
        """The tenant's pipeline if it has one in this process, else the default."""
        if tenant_id is not None:
            entry = self._tenants.get(tenant_id)
            if entry is not None:
                return entry[2]
        return self.default()

    def tenant_version(self, tenant_id: str) -> int | None:
        entry = self._tenants.get(tenant_id)
        return entry[0] if entry else None

    def tenant_state(self, tenant_id: str) -> tuple[int, str | None] | None:
        """The (version, training-data hash) of the tenant's pipeline in this process, if it has one."""
        entry = self._tenants.get(tenant_id)
        return (entry[0], entry[1]) if entry else None

    def install(self, tenant_id: str, version: int, pipeline: NluPipeline, data_hash: str | None = None) -> None:
        """Swap in a tenant's new pipeline unless a newer one is already installed."""
        with self._lock:
            current = self._tenants.get(tenant_id)
            if current is None or current[0] <= version:
                self._tenants[tenant_id] = (version, data_hash, pipeline)

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._tenants.pop(tenant_id, None)


registry = ModelRegistry()
