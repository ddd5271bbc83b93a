"""Turning zh/en text into retrieval features, and marking matches in snippets.

One feature space serves both languages, so a mixed question ("退货 return policy") still matches. Each
feature carries a family prefix that decides its weight at query time:

* ``w:`` whole words: jieba words for Chinese, lightly stemmed words for English (and digits);
* ``b:``/``c:`` Chinese character bigrams/unigrams: survive jieba cutting a phrase differently in the
  question and the entry, and typos of one character;
* ``g:`` English character trigrams with word boundaries: typo tolerance ("pakage" still shares most of
  "package");
* ``s:`` synonym families (``data/synonyms.json``): "parcel"/"package"/"快递" all add ``s:parcel``.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import unicodedata
from collections import Counter
from functools import cache
from pathlib import Path

import jieba

DATA_DIR = Path(__file__).with_name("data")

FAMILY_WEIGHTS = {"w": 1.0, "s": 2.0, "b": 0.55, "c": 0.3, "g": 0.22}

_SEGMENTS = re.compile(r"([\u3400-\u9fff\uf900-\ufaff]+)|([a-z0-9]+(?:'[a-z]+)?)")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

ZH_STOP = frozenset(
    "的 了 吗 呢 吧 啊 呀 哦 嗯 我 你 您 他 她 它 我们 你们 是 在 有 就 都 也 和 与 及 请问 请 一下 这个 那个 这 那 "
    "怎么 怎样 如何 什么 为什么 能 可以 可不可以 能不能 会 要 想 还 吗 么 个 下 把 被 给 到 对 从 让 得 地 着 过 "
    "一个 问 问下 问一下 麻烦 谢谢 你好 您好 亲 客服".split())
ZH_STOP_CHARS = frozenset("的了吗呢吧啊呀哦嗯我你您他她它是在有就都也和与及请这那个么下把被给对从让得地着过一")
EN_STOP = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being do does did "
    "i me my we our you your he she it its they them their this that these those there here what which who "
    "whom how when where why can could would should will shall may might must have has had am not no yes "
    "please hi hello thanks thank just so than then too very any some about into up out get got s t "
    "there's i'm it's don't can't won't".split())
# Question words are everywhere in FAQs and carry no topic; the synonym families carry intents such as
# "where is my parcel" (s:track) instead.

_lock = threading.Lock()
_ready = False


def _stem(word: str) -> str:
    """Strip common English inflections; light on purpose (no dictionary, no over-stemming of short words)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            if suffix == "es" and not word.endswith(("shes", "ches", "xes", "sses", "zes")):
                return word[:-1]
            stem = word[: len(word) - len(suffix)] + keep
            if suffix in ("ing", "ed") and len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]  # shipped -> ship, shopping -> shop
            return stem
    return word


@cache
def synonym_families() -> dict[str, tuple[str, ...]]:
    raw = json.loads((DATA_DIR / "synonyms.json").read_text(encoding="utf-8"))
    return {name: tuple(normalise(t) for t in terms) for name, terms in raw.items() if not name.startswith("_")}


@cache
def _synonym_tables() -> tuple[dict[str, list[tuple[str, tuple[str, ...]]]], dict[tuple[str, ...], tuple[str, ...]], int]:
    """Chinese terms by first character (longest first) and English phrases by word tuple.

    Matching walks the text once (a dict probe per character or word) instead of trying hundreds of
    alternatives at every position, which is what keeps building a 20,000-entry index in seconds."""
    owners: dict[str, list[str]] = {}
    for family, terms in synonym_families().items():
        for term in terms:
            owners.setdefault(term, []).append(family)
    zh: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    en: dict[tuple[str, ...], tuple[str, ...]] = {}
    for term, families in owners.items():
        if _CJK.search(term):
            zh.setdefault(term[0], []).append((term, tuple(families)))
        else:
            words = tuple(m.group(0) for m in _SEGMENTS.finditer(term))
            if words:
                en[words] = tuple(families)
    for candidates in zh.values():
        candidates.sort(key=lambda item: len(item[0]), reverse=True)
    return zh, en, max((len(w) for w in en), default=1)


def _synonyms(zh_runs: list[str], en_runs: list[list[str]]) -> Counter[str]:
    """Synonym families found in the text, leftmost-longest and without overlaps."""
    zh_table, en_table, longest = _synonym_tables()
    found: Counter[str] = Counter()
    for run in zh_runs:
        i = 0
        while i < len(run):
            step = 1
            for term, families in zh_table.get(run[i], ()):
                if run.startswith(term, i):
                    found.update(families)
                    step = len(term)
                    break
            i += step
    for words in en_runs:
        i = 0
        while i < len(words):
            step = 1
            for size in range(min(longest, len(words) - i), 0, -1):
                families = en_table.get(tuple(words[i:i + size]))
                if families:
                    found.update(families)
                    step = size
                    break
            i += step
    return found


def _runs(norm: str) -> tuple[list[str], list[list[str]]]:
    """Chinese runs, and runs of English words (a Chinese run separates English phrases)."""
    zh_runs: list[str] = []
    en_runs: list[list[str]] = [[]]
    for match in _SEGMENTS.finditer(norm):
        if match.group(1):
            zh_runs.append(match.group(1))
            if en_runs[-1]:
                en_runs.append([])
        else:
            en_runs[-1].append(match.group(2))
    return zh_runs, en_runs


def ensure_ready() -> None:
    """Load jieba once and teach it the synonym phrases, so "退换" stays one word."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        for terms in synonym_families().values():
            for term in terms:
                if _CJK.search(term) and 2 <= len(term) <= 6:
                    jieba.add_word(term, freq=2000)
        _ready = True


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), lower case, collapsed whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def features(text: str) -> Counter[str]:
    """The weighted-family features of ``text`` with their counts."""
    ensure_ready()
    norm = normalise(text)
    out: Counter[str] = Counter()
    for match in _SEGMENTS.finditer(norm):
        zh, en = match.group(1), match.group(2)
        if zh:
            for word in jieba.lcut(zh, HMM=True):
                if word not in ZH_STOP and (len(word) > 1 or word not in ZH_STOP_CHARS):
                    out["w:" + word] += 1
            for i, ch in enumerate(zh):
                if ch not in ZH_STOP_CHARS:
                    out["c:" + ch] += 1
                if i + 1 < len(zh):
                    out["b:" + zh[i: i + 2]] += 1
        elif en:
            if en in EN_STOP:
                continue
            stem = _stem(en)
            out["w:" + stem] += 1
            if en.isalpha() and len(en) > 3:
                padded = f"#{en}#"
                for i in range(len(padded) - 2):
                    out["g:" + padded[i: i + 3]] += 1
    for family, count in _synonyms(*_runs(norm)).items():
        out["s:" + family] += count
    return out


def language_of(text: str) -> str:
    """"zh" when the text has any Chinese characters, otherwise "en"."""
    return "zh" if _CJK.search(text) else "en"


def query_terms(query: str) -> list[str]:
    """Surface strings worth marking in a snippet: the query's words and the synonyms it triggered."""
    ensure_ready()
    norm = normalise(query)
    terms: set[str] = set()
    for match in _SEGMENTS.finditer(norm):
        zh, en = match.group(1), match.group(2)
        if zh:
            terms.update(w for w in jieba.lcut(zh) if len(w) > 1 and w not in ZH_STOP)
        elif en and en not in EN_STOP and len(en) > 1:
            terms.add(_stem(en))
    for family in _synonyms(*_runs(norm)):
        terms.update(synonym_families()[family])
    return sorted(terms, key=len, reverse=True)


def highlight(text: str, query: str, *, width: int = 160, mark: tuple[str, str] = ("<mark>", "</mark>")) -> str:
    """An HTML-escaped window of ``text`` around the densest matches of ``query``, matches wrapped in mark."""
    plain = " ".join(text.split())
    if not plain:
        return ""
    terms = query_terms(query)
    lower = unicodedata.normalize("NFKC", plain).lower()
    if len(lower) != len(plain):  # NFKC changed lengths (rare ligatures): match on the original instead
        lower = plain.lower()
    spans: list[tuple[int, int]] = []
    for term in terms:
        if _CJK.search(term):
            pattern = re.escape(term)
        else:  # an English stem also marks its inflections: "ship" marks "shipping"
            pattern = rf"(?<![a-z0-9]){re.escape(term)}[a-z]*"
        spans += [(m.start(), m.end()) for m in re.finditer(pattern, lower)]
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    begin = 0
    if merged and len(plain) > width:
        best = max(range(len(merged)), key=lambda i: sum(1 for s, _ in merged if merged[i][0] <= s < merged[i][0] + width))
        begin = max(0, min(merged[best][0] - width // 4, len(plain) - width))
    end = min(len(plain), begin + width)
    out, cursor = [], begin
    for start, stop in merged:
        if stop <= begin or start >= end:
            continue
        start, stop = max(start, begin), min(stop, end)
        out.append(html.escape(plain[cursor:start]))
        out.append(mark[0] + html.escape(plain[start:stop]) + mark[1])
        cursor = stop
    out.append(html.escape(plain[cursor:end]))
    return ("…" if begin > 0 else "") + "".join(out) + ("…" if end < len(plain) else "")
