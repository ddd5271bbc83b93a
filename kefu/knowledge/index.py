"""The in-memory search index: BM25 over zh/en features in scipy sparse matrices, optional embeddings.

Used by the API (one index per tenant, rebuilt when published entries change), by the bot seam in
``service.answer`` and by ``kefu kb search``. Nothing here touches the database.

Layout: every entry contributes one or more *rows* (its question, each paraphrase, each chunk of an article)
and one *answer row*. An entry's lexical score is the best of its rows plus a damped score of its answer:
matching one paraphrase well beats matching a little of all of them, and the answer text helps a question
phrased in the answer's words. Per query this is two sparse products over the query's features only, a
``maximum.reduceat`` over rows and an ``argpartition``: a few milliseconds on 20,000 entries.

Confidence is the lexical score divided by the score the query would get against itself (a perfect match):
a number in [0, 1] that does not drift with the size of the KB, so the bot's thresholds hold for every shop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from scipy import sparse

from kefu.knowledge.text import FAMILY_WEIGHTS, features, highlight

K1 = 1.2
B = 0.75
ANSWER_WEIGHT = 0.6
EMBEDDING_WEIGHT = 0.35


class EmbeddingBackend(Protocol):
    """An optional dense text encoder (e.g. a sentence-embedding model) mixed into lexical scores."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return one L2-normalised vector per text, shape (len(texts), dim), float32."""
        ...


@dataclass(slots=True)
class IndexedEntry:
    """What the index needs of an entry; ``questions`` are the rows (question, paraphrases, chunks)."""

    id: str
    questions: list[str]
    answer: str = ""
    language: str = ""
    category: str = ""
    title: str = ""
    channels: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    tags: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()  # the catalogue products the entry is about (empty: none in particular)


@dataclass(slots=True)
class Hit:
    id: str
    score: float
    confidence: float
    matched: str  # the row (question, paraphrase or chunk) that matched best
    entry: IndexedEntry = field(repr=False)

    def snippet(self, query: str, *, width: int = 160) -> str:
        """The answer (or the matched chunk) around the query's words, HTML-escaped with <mark> tags.

        When the answer shares no word with the query (a synonym matched the question), the matched question
        is shown instead, so the agent sees why the entry came up."""
        text = highlight(self.entry.answer or self.matched, query, width=width)
        if "<mark>" not in text and self.entry.answer:
            matched = highlight(self.matched, query, width=width)
            if "<mark>" in matched:
                return matched
        return text


def _codes(values: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Each value as a small integer, and the code of each distinct value."""
    known: dict[str, int] = {}
    return np.fromiter((known.setdefault(v, len(known)) for v in values), dtype=np.int32, count=len(values)), known


def _weight(feature: str) -> float:
    return FAMILY_WEIGHTS[feature[0]]


class SearchIndex:
    """Immutable once built; build a new one when entries change (cheap: ~2 s per 10,000 entries)."""

    def __init__(self, entries: Sequence[IndexedEntry], *, embedder: EmbeddingBackend | None = None) -> None:
        self.entries = list(entries)
        self.embedder = embedder
        vocab: dict[str, int] = {}
        row_feats: list[dict[int, int]] = []
        answer_feats: list[dict[int, int]] = []
        row_owner: list[int] = []
        self.row_text: list[str] = []
        for number, entry in enumerate(self.entries):
            rows = [q for q in entry.questions if q and q.strip()] or [entry.title or entry.answer[:200]]
            for text in rows:
                row_feats.append({vocab.setdefault(f, len(vocab)): n for f, n in features(text).items()})
                row_owner.append(number)
                self.row_text.append(text)
            answer_feats.append({vocab.setdefault(f, len(vocab)): n for f, n in features(entry.answer).items()}
                                if entry.answer else {})
        self.vocab = vocab
        self.family_weight = np.array([_weight(f) for f in sorted(vocab, key=vocab.__getitem__)], dtype=np.float32)
        n_rows, n_terms = len(row_feats), len(vocab)
        df = np.zeros(n_terms, dtype=np.float64)
        for feats in (*row_feats, *answer_feats):
            if feats:
                df[list(feats)] += 1
        n_docs = max(1, n_rows + sum(1 for a in answer_feats if a))
        self.idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        self.idf_unknown = float(np.log(1.0 + (n_docs + 0.5) / 0.5))
        self._rows_t = self._bm25(row_feats, n_terms)  # terms x rows, CSR: a query slices its terms' rows
        self._answers_t = self._bm25(answer_feats, n_terms)
        self.row_owner = np.asarray(row_owner, dtype=np.int64)
        self.row_starts = np.flatnonzero(np.r_[True, self.row_owner[1:] != self.row_owner[:-1]]) \
            if n_rows else np.zeros(0, dtype=np.int64)
        lengths = np.array([sum(f.values()) for f in row_feats] or [1], dtype=np.float64)
        self._avg_len = float(lengths.mean())
        # Languages and categories as small integer codes: a filter is one vectorised comparison (comparing
        # Python strings in an object array costs about 1 ms per 20,000 entries).
        self._language_codes, self._languages = _codes([e.language or "" for e in self.entries])
        self._category_codes, self._categories = _codes([e.category or "" for e in self.entries])
        self._layout_rows(n_rows)
        self._has_window = any(e.valid_from or e.valid_until for e in self.entries)
        self._has_channels = any(e.channels for e in self.entries)
        self._valid_from = np.array([e.valid_from.timestamp() if e.valid_from else -np.inf for e in self.entries])
        self._valid_until = np.array([e.valid_until.timestamp() if e.valid_until else np.inf for e in self.entries])
        self._channel_masks: dict[str, np.ndarray] = {}
        linked: dict[str, list[int]] = {}
        for number, entry in enumerate(self.entries):
            for product in dict.fromkeys(entry.product_ids):
                linked.setdefault(product, []).append(number)
        # product -> the entries linked to it: a filter is one boolean scatter, whatever the catalogue's size
        self._product_entries = {p: np.asarray(n, dtype=np.int64) for p, n in linked.items()}
        self._embeddings: np.ndarray | None = None
        if embedder is not None and self.row_text:
            self._embeddings = np.asarray(embedder.embed(self.row_text), dtype=np.float32)

    def _layout_rows(self, n_rows: int) -> None:
        """Lay rows out as an P × entries table of row numbers (padding points at a zero score) so an entry's
        best row is one gather and a row-wise max; rows beyond P (long paraphrase lists, article chunks) are
        folded in with ``maximum.at``. ``maximum.reduceat`` does the same job about ten times slower."""
        n_entries = len(self.entries)
        counts = np.diff(np.r_[self.row_starts, n_rows]) if n_entries else np.zeros(0, dtype=np.int64)
        width = int(min(8, counts.max())) if n_entries else 1
        self._row_table = np.full((width, n_entries), n_rows, dtype=np.int64)  # P × entries, one row per slot
        for j in range(width):
            has = counts > j
            self._row_table[j, has] = self.row_starts[has] + j
        extra = [(int(self.row_starts[e]) + j, e) for e in np.flatnonzero(counts > width)
                 for j in range(width, int(counts[e]))]
        self._extra_rows = np.array([r for r, _ in extra], dtype=np.int64)
        self._extra_owner = np.array([e for _, e in extra], dtype=np.int64)

    def _best_rows(self, row_scores: np.ndarray) -> np.ndarray:
        padded = np.empty(len(row_scores) + 1, dtype=np.float32)
        padded[:-1] = row_scores
        padded[-1] = 0.0
        best = padded[self._row_table[0]]
        for column in self._row_table[1:]:  # column-wise: a row-wise max over a short axis is slow in numpy
            np.maximum(best, padded[column], out=best)
        if len(self._extra_rows):
            np.maximum.at(best, self._extra_owner, padded[self._extra_rows])
        return best

    def __len__(self) -> int:
        return len(self.entries)

    def _bm25(self, docs: list[dict[int, int]], n_terms: int) -> sparse.csr_matrix:
        lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
        avg = float(lengths[lengths > 0].mean()) if (lengths > 0).any() else 1.0
        indptr = np.zeros(len(docs) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(d) for d in docs])
        cols = np.fromiter((t for d in docs for t in d), dtype=np.int64, count=int(indptr[-1]))
        tf = np.fromiter((n for d in docs for n in d.values()), dtype=np.float64, count=int(indptr[-1]))
        doc_len = np.repeat(lengths, np.diff(indptr))
        values = self.idf[cols] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * doc_len / avg))
        matrix = sparse.csr_matrix((values.astype(np.float32), cols, indptr), shape=(len(docs), n_terms))
        return matrix.T.tocsr()

    def _query_vector(self, query: str) -> tuple[np.ndarray, np.ndarray, float]:
        """Known feature ids, their query weights, and the score a perfect match would get."""
        counts = features(query)
        ids, weights = [], []
        perfect = 0.0
        saturation = (K1 + 1) / (1 + K1 * (1 - B + B * max(1, sum(counts.values())) / self._avg_len))
        for feature, _n in counts.items():
            w = _weight(feature)
            col = self.vocab.get(feature)
            if col is None:
                perfect += w * self.idf_unknown * saturation
                continue
            ids.append(col)
            weights.append(w)
            perfect += w * float(self.idf[col]) * saturation
        return np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.float32), perfect

    def _lexical(self, query: str) -> tuple[np.ndarray, np.ndarray, float]:
        """Entry scores, the per-row scores (for "which row matched") and the perfect score."""
        ids, weights, perfect = self._query_vector(query)
        n_entries = len(self.entries)
        if not len(ids) or not n_entries:
            return np.zeros(n_entries, dtype=np.float32), np.zeros(len(self.row_owner), dtype=np.float32), perfect
        row_scores = weights @ self._rows_t[ids]
        scores = self._best_rows(np.asarray(row_scores, dtype=np.float32).ravel())
        scores = scores + ANSWER_WEIGHT * (weights @ self._answers_t[ids])
        return np.asarray(scores, dtype=np.float32).ravel(), np.asarray(row_scores).ravel(), perfect

    def _mask(self, *, language: str | None, category: str | None, channel: str | None,
              now: datetime | None, exclude: Iterable[str] = (), product: str | None = None) -> np.ndarray | None:
        mask = None

        def both(m: np.ndarray) -> np.ndarray:
            return m if mask is None else mask & m

        if language:
            mask = both((self._language_codes == self._languages.get(language, -1))
                        | (self._language_codes == self._languages.get("", -1)))
        if category:
            mask = both(self._category_codes == self._categories.get(category, -1))
        if channel and self._has_channels:
            visible = self._channel_masks.get(channel)
            if visible is None:
                visible = np.array([not e.channels or channel in e.channels for e in self.entries], dtype=bool)
                if len(self._channel_masks) < 64:
                    self._channel_masks[channel] = visible
            mask = both(visible)
        if product:
            # Strict: only entries linked to the product (an agent looking at one product wants its facts).
            linked = np.zeros(len(self.entries), dtype=bool)
            linked[self._product_entries.get(product, np.zeros(0, dtype=np.int64))] = True
            mask = both(linked)
        if now is not None and self._has_window:
            stamp = now.timestamp()
            mask = both((self._valid_from <= stamp) & (stamp < self._valid_until))
        excluded = set(exclude)
        if excluded:
            mask = both(np.array([e.id not in excluded for e in self.entries], dtype=bool))
        return mask

    def search(self, query: str, *, top: int = 5, language: str | None = None, category: str | None = None,
               channel: str | None = None, now: datetime | None = None, exclude: Iterable[str] = (),
               product: str | None = None) -> list[Hit]:
        """The best ``top`` entries for ``query`` passing the filters, best first (empty if nothing matches).

        Filters: ``language`` (entries in it, or of unknown language), ``category`` (exact), ``channel``
        (entries visible there: listed or visible everywhere), ``product`` (entries linked to that product),
        ``now`` (inside the validity window)."""
        if not self.entries or top <= 0:
            return []
        scores, row_scores, perfect = self._lexical(query)
        confidence = np.minimum(1.0, scores / perfect) if perfect > 0 else np.zeros_like(scores)
        if self._embeddings is not None and self.embedder is not None:
            vector = np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]
            dense = self._best_rows(np.asarray(self._embeddings @ vector, dtype=np.float32))
            confidence = (1 - EMBEDDING_WEIGHT) * confidence + EMBEDDING_WEIGHT * np.clip(dense, 0.0, 1.0)
            scores = confidence * max(perfect, 1e-6)
        mask = self._mask(language=language, category=category, channel=channel, now=now, exclude=exclude,
                          product=product)
        ranked = confidence if mask is None else np.where(mask, confidence, -1.0)
        candidates = np.flatnonzero(ranked > 0)  # usually a small share of the KB: partition only those
        if len(candidates) > top:
            candidates = candidates[np.argpartition(-ranked[candidates], top - 1)[:top]]
        best = candidates[np.lexsort((candidates, -ranked[candidates]))]
        hits = []
        for number in best:
            start = self.row_starts[number]
            stop = self.row_starts[number + 1] if number + 1 < len(self.row_starts) else len(self.row_owner)
            matched = self.row_text[start + int(np.argmax(row_scores[start:stop]))]
            hits.append(Hit(id=self.entries[number].id, score=float(scores[number]),
                            confidence=float(confidence[number]), matched=matched, entry=self.entries[number]))
        return hits
