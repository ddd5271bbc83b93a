"""The search index on its own: zh/en, synonyms, typos, filters, snippets, chunking, and file parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.knowledge import io as kb_io
from kefu.knowledge.index import IndexedEntry, SearchIndex
from kefu.knowledge.policies import chunk_text, decide

NOW = datetime(2026, 11, 22, tzinfo=UTC)

ENTRIES = [
    IndexedEntry(id="zh-return", questions=["支持七天无理由退货吗", "买了不喜欢可以退吗"],
                 answer="自签收次日起 7 天内可申请无理由退货。", language="zh", category="returns"),
    IndexedEntry(id="zh-invoice", questions=["怎么开发票"], answer="订单完成后在我的订单下载电子发票。",
                 language="zh", category="invoices"),
    IndexedEntry(id="en-track", questions=["Where is my parcel?", "How do I track my order?"],
                 answer="Open the order to see the courier and tracking number.", language="en",
                 category="shipping"),
    IndexedEntry(id="en-refund", questions=["How long does a refund take?"],
                 answer="Refunds arrive within 1-7 business days.", language="en", category="refunds"),
    IndexedEntry(id="en-sale", questions=["Is there a Singles Day discount?"], answer="20% off on 11.11.",
                 language="en", valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=1),
                 channels=("webchat",)),
]


def top(index: SearchIndex, query: str, **kw: object) -> str | None:
    hits = index.search(query, **kw)  # type: ignore[arg-type]
    return hits[0].id if hits else None


def test_synonyms_typos_and_both_languages() -> None:
    index = SearchIndex(ENTRIES)
    assert top(index, "我想退换") == "zh-return"  # 退换 is in the return family, never written in the entry
    assert top(index, "能开专票吗") == "zh-invoice"
    assert top(index, "where is my package") == "en-track"  # package ~ parcel
    assert top(index, "wher is my pakage") == "en-track"  # typos
    assert top(index, "when do I get my money back") == "en-refund"


def test_filters_language_category_channel_and_validity() -> None:
    index = SearchIndex(ENTRIES)
    assert top(index, "refund", language="zh") is None
    assert top(index, "退货", category="invoices") != "zh-return"
    assert top(index, "Singles Day discount", now=NOW, channel="webchat") == "en-sale"
    assert top(index, "Singles Day discount", now=NOW, channel="email") != "en-sale"
    assert top(index, "Singles Day discount", now=NOW + timedelta(days=3)) != "en-sale"


def test_snippets_mark_matches_and_escape_html() -> None:
    index = SearchIndex([IndexedEntry(id="x", questions=["Track my parcel"],
                                      answer="<script>alert(1)</script> Your parcel is on its way", language="en")])
    hit = index.search("where is my parcel")[0]
    snippet = hit.snippet("where is my parcel")
    assert "<mark>parcel</mark>" in snippet
    assert "<script>" not in snippet


def test_confidence_drives_the_bot_decision() -> None:
    index = SearchIndex(ENTRIES)
    exact = index.search("How long does a refund take?")
    assert decide([h.confidence for h in exact]) == "answer"
    chatter = index.search("今天天气怎么样")
    assert decide([h.confidence for h in chatter]) == "handoff"


def test_long_documents_are_chunked_at_paragraphs() -> None:
    text = "\n\n".join(f"第{i}段。" + "内容" * 200 for i in range(10))
    chunks = chunk_text(text, 1500)
    assert len(chunks) > 1 and all(len(c) <= 1500 for c in chunks)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")


def test_import_reports_bad_rows_by_line_and_keeps_the_rest() -> None:
    lines = [
        json.dumps({"id": "a", "question": "Q1", "answer": "A1", "language": "en"}),
        "{not json",
        json.dumps({"id": "b", "question": "Q2", "answer": "   ", "language": "en"}),
        json.dumps({"id": "a", "question": "Q3", "answer": "A3", "language": "en"}),
        json.dumps({"id": "c", "question": "", "answer": "A4"}),
        json.dumps({"id": "d", "question": "Q5", "answer": "A5", "valid_from": "2026-01-01"}),
        json.dumps({"id": "e", "question": "大文档", "answer": "很长的内容。" * 2000, "language": "zh"}),
    ]
    drafts, errors = kb_io.parse("\n".join(lines), "jsonl")
    assert [d.key for d in drafts] == ["a", "e"]
    assert [(e.line, e.code) for e in errors] == [(2, "malformed_row"), (3, "empty_answer"), (4, "duplicate_id"),
                                                  (5, "missing_question"), (6, "invalid_field")]
    assert drafts[1].kind == "article" and len(drafts[1].chunks) > 5


def test_csv_and_markdown_round_trip() -> None:
    rows = [{"id": "k1", "language": "zh", "category": "退货", "question": "怎么退货", "questions": ["退货流程"],
             "answer": "在订单页申请。", "tags": ["售后"], "channels": [], "product_ids": [], "kind": "faq",
             "valid_from": None, "valid_until": None},
            {"id": "k2", "language": "en", "category": "", "question": "Where is my parcel?", "questions": [],
             "answer": "See <b>tracking</b>, \"quoted\", with, commas", "tags": [], "channels": ["webchat"],
             "product_ids": ["sku-1"], "kind": "faq", "valid_from": "2026-11-01T00:00:00+08:00",
             "valid_until": None}]
    for fmt in ("csv", "markdown", "json", "jsonl"):
        drafts, errors = kb_io.parse(kb_io.export(rows, fmt), fmt)
        assert errors == [], (fmt, errors)
        got = {d.key: d for d in drafts}
        assert got["k1"].paraphrases == ["退货流程"] and got["k1"].category == "退货", fmt
        assert got["k2"].answer == rows[1]["answer"] and got["k2"].channels == ["webchat"], fmt
        assert got["k2"].valid_from == datetime.fromisoformat("2026-11-01T00:00:00+08:00"), fmt


def test_html_is_sanitised_on_render() -> None:
    html = kb_io.sanitise_html('<p onclick="x()">Hi <script>steal()</script><a href="javascript:x">l</a></p>')
    assert "script" not in html and "onclick" not in html and "javascript" not in html
    assert html.startswith("<p>")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=12), st.sampled_from(["csv", "jsonl", "json", "markdown"]))
def test_parsing_never_raises_and_accounts_for_every_row(lines: list[str], fmt: str) -> None:
    drafts, errors = kb_io.parse("\n".join(lines), fmt)
    assert all(d.question.strip() and kb_io.plain_text(d.answer) for d in drafts)
    assert len({d.key for d in drafts if d.key}) == len([d for d in drafts if d.key])
    assert all(e.line >= 1 for e in errors)


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=60))
def test_search_never_raises_and_scores_are_ordered(query: str) -> None:
    hits = _INDEX.search(query, top=5)
    assert [h.confidence for h in hits] == sorted((h.confidence for h in hits), reverse=True)
    assert all(0 < h.confidence <= 1 for h in hits)


_INDEX = SearchIndex(ENTRIES)


class ConceptEmbedding:
    """A tiny stand-in for a sentence-embedding model: texts mentioning the same concept point the same way."""

    name = "concepts"
    CONCEPTS = (("refund", "money", "reimburse"), ("parcel", "courier", "box"), ("invoice", "receipt"))

    def embed(self, texts):  # type: ignore[no-untyped-def]
        import numpy as np

        out = np.zeros((len(texts), len(self.CONCEPTS) + 1), dtype=np.float32)
        for row, text in enumerate(texts):
            lowered = text.lower()
            for col, words in enumerate(self.CONCEPTS):
                out[row, col] = sum(word in lowered for word in words)
            out[row, -1] = 0.1
            out[row] /= np.linalg.norm(out[row])
        return out


def test_an_embedding_backend_adds_meaning_the_words_miss() -> None:
    entries = [IndexedEntry(id="refund", questions=["How long does a refund take?"], answer="1-7 days", language="en"),
               IndexedEntry(id="track", questions=["Track my parcel"], answer="See tracking", language="en")]
    query = "money timing"  # no word in common with either entry
    lexical = SearchIndex(entries).search(query)
    assert all(hit.confidence < 0.1 for hit in lexical)  # at most stray trigrams ("timing" ~ "tracking")
    best = SearchIndex(entries, embedder=ConceptEmbedding()).search(query)[0]
    assert best.id == "refund" and best.confidence > 0.3


def test_an_entry_with_many_paraphrases_is_found_by_its_last_one() -> None:
    many = IndexedEntry(id="many", questions=[f"filler question {i}" for i in range(11)] + ["唯一的冷门说法 zebra"],
                        answer="", language="en")
    index = SearchIndex([many, *ENTRIES])
    hit = index.search("zebra")[0]
    assert hit.id == "many" and hit.matched.endswith("zebra")


def test_product_filter_keeps_only_linked_entries() -> None:
    entries = [IndexedEntry(id="kettle", questions=["How do I descale it?"], language="en", product_ids=("sku-1",)),
               IndexedEntry(id="toaster", questions=["How do I descale it?"], language="en", product_ids=("sku-2",)),
               IndexedEntry(id="general", questions=["How do I descale it?"], language="en")]
    index = SearchIndex(entries)
    assert {h.id for h in index.search("descale")} == {"kettle", "toaster", "general"}
    assert [h.id for h in index.search("descale", product="sku-2")] == ["toaster"]
    assert index.search("descale", product="sku-3") == []
