"""Chinese and English texts for errors and system messages, chosen per request.

Catalogues live in ``core/locales/<lang>.json`` plus one file per domain in ``core/locales/<lang>/<domain>.json``
(so domains add texts without touching a shared file), keyed by stable codes; a missing key falls back to English
and then to the code itself, so a forgotten translation degrades instead of failing.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SUPPORTED = ("en", "zh")
_DIR = Path(__file__).with_name("locales")


@cache
def _catalogue(lang: str) -> dict[str, str]:
    return catalogue_files(lang)


def catalogue_files(lang: str) -> dict[str, str]:
    """Merge the base catalogue with the per-domain ones; a key defined twice is a bug, so it raises."""
    merged: dict[str, str] = json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    folder = _DIR / lang
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        part = json.loads(path.read_text(encoding="utf-8"))
        clash = set(part) & set(merged)
        if clash:
            raise ValueError(f"{path.name} redefines {sorted(clash)[:5]}")
        merged.update(part)
    return merged


def negotiate(accept_language: str | None, default: str = "en") -> str:
    """Pick zh or en from an Accept-Language header, honouring q-values."""
    if not accept_language:
        return default
    best, best_q = default, -1.0
    for part in accept_language.split(","):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in SUPPORTED and q > best_q:
            best, best_q = lang, q
    return best


def name_of(kind: str, code: str, lang: str = "en", default: str | None = None) -> str:
    """The words for a code of some kind (``nlu_intent``, ``commerce.order_status`` …) in ``lang`` or English,
    from the ``<kind>.<code>`` text; where none exists (a tenant's own intent, a connector's own state),
    ``default`` or the code itself."""
    lang = lang if lang in SUPPORTED else "en"
    key = f"{kind}.{code}"
    return _catalogue(lang).get(key) or _catalogue("en").get(key) or (code if default is None else default)


def translate(key: str, lang: str = "en", **params: Any) -> str:
    """Return the text for ``key`` in ``lang`` with ``{param}`` placeholders filled."""
    lang = lang if lang in SUPPORTED else "en"
    text = _catalogue(lang).get(key) or _catalogue("en").get(key) or key
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text
