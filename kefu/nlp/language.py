"""Language detection, normalisation and tokenisation for Chinese, English and mixed messages.

Detection counts scripts instead of using a statistical model: customer messages are short (often under
ten characters), and for the two languages we support the script is a better signal than n-gram
profiles, costs microseconds and never needs training data.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

import jieba

jieba.setLogLevel(logging.WARNING)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# C0/C1 control characters other than tab/newline, lone surrogates and the replacement char of bad bytes.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")
_SPACE = re.compile(r"\s+")
_EN_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[#¥$]")


def clean(text: str) -> str:
    """Drop control characters and bad bytes so that offsets stay meaningful and nothing downstream chokes."""
    if _CONTROL.search(text):
        text = _CONTROL.sub(" ", text)
    return text


def fold(text: str) -> str:
    """Fold width and case (ＡＢＣ１２３ → abc123, ！→ !) for matching; always keeps the length of the text.

    NFKC or lower-casing may change the length of a few rare characters (ligatures, ㈱, "İ"); those are
    kept as they are so that character offsets computed on the folded text are valid on the original one.
    """
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).lower()
    if len(folded) == len(text):
        return folded
    out = []
    for ch in text:
        n = unicodedata.normalize("NFKC", ch).lower()
        out.append(n if len(n) == 1 else ch)
    return "".join(out)


def detect_language(text: str) -> str:
    """Return "zh", "en", "mixed" or "und" (undetermined: empty, digits, emoji, other scripts)."""
    cjk = len(_CJK.findall(text))
    latin = sum(len(w) for w in _LATIN_WORD.findall(text))
    if cjk == 0 and latin == 0:
        return "und"
    if cjk == 0:
        return "en"
    if latin == 0:
        return "zh"
    # Chinese characters carry about three times the information of a Latin letter; a product name
    # or "iPhone" inside a Chinese sentence does not make it mixed.
    zh_weight, en_weight = cjk * 3, latin
    if zh_weight >= 2 * en_weight:
        return "zh"
    if en_weight >= 3 * zh_weight:
        return "en"
    return "mixed"


@lru_cache(maxsize=20000)
def _jieba_words(chunk: str) -> tuple[str, ...]:
    return tuple(w for w in jieba.lcut(chunk) if w.strip())


def tokenize(text: str) -> list[str]:
    """Words of a folded text: jieba for runs of Chinese, simple word splitting for the rest."""
    tokens: list[str] = []
    pos = 0
    for m in re.finditer(r"[\u3400-\u9fff\uf900-\ufaff]+", text):
        if m.start() > pos:
            tokens.extend(_EN_TOKEN.findall(text[pos:m.start()]))
        tokens.extend(_jieba_words(m.group()))
        pos = m.end()
    if pos < len(text):
        tokens.extend(_EN_TOKEN.findall(text[pos:]))
    return tokens


def squash_spaces(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
