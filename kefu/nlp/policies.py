"""Pure rules of the nlp domain: what a custom intent name, a training example and an order pattern may be."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import re2

from kefu.core.i18n import name_of
from kefu.nlp.entities import compile_untrusted
from kefu.nlp.intents import DEFAULT_INTENTS
from kefu.nlp.language import clean, detect_language, squash_spaces

MAX_EXAMPLE_CHARS = 500
MAX_EXAMPLES_PER_TENANT = 20_000
# An order number has a fixed shape ("MS-\d{8}"); a quantified group that itself contains a quantifier
# ("(a+)+", "(\d*)*") is almost always a mistake. Tenant patterns run on RE2, so this is not what keeps
# matching fast (RE2 is linear whatever the pattern); it refuses the obvious mistakes with a clear reason.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")
# What Python's ``re`` accepts but RE2 cannot run, to name it in the refusal (checked in this order).
_UNSUPPORTED_FEATURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lookaround", re.compile(r"\(\?<?[=!]")),
    ("backreference", re.compile(r"\\[1-9]|\(\?P=|\\g<")),
    ("atomic_group", re.compile(r"\(\?>")),
    ("possessive_quantifier", re.compile(r"(?:[*+?}])\+")),
    ("conditional", re.compile(r"\(\?\(")),
)


@dataclass(frozen=True, slots=True)
class PatternProblem:
    """Why an order pattern is refused: a stable ``code`` plus what the message needs (``params``)."""

    code: str  # invalid_regex | unsupported_feature | nested_quantifier | matches_empty | too_many_groups
    params: dict[str, str] = field(default_factory=dict)


def is_reserved_intent(name: str) -> bool:
    """Default intents cannot be redefined as custom ones (their examples can be extended instead)."""
    return name in DEFAULT_INTENTS


def intent_title(name: str | None, lang: str) -> str | None:
    """What people read for an intent: the default taxonomy's names in zh/en (``nlu_intent.<name>``); a
    tenant's own intent is shown by the name the tenant gave it."""
    if not name:
        return None
    return name_of("nlu_intent", name, lang)


def emotion_title(label: str, lang: str) -> str:
    """The emotion label in zh/en (``nlu_emotion.<label>``), the label itself if it has no text."""
    return name_of("nlu_emotion", label, lang)


def normalise_example(text: str) -> str | None:
    """The example as stored (control characters removed, spaces squashed), or None if it is unusable."""
    text = squash_spaces(clean(text))[:MAX_EXAMPLE_CHARS]
    return text if any(ch.isalnum() for ch in text) else None


def example_language(text: str) -> str:
    return detect_language(text)


def _unsupported_feature(regex: str) -> str:
    for name, marker in _UNSUPPORTED_FEATURES:
        if marker.search(regex):
            return name
    return "other"


def order_pattern_problem(regex: str) -> PatternProblem | None:
    """Why a tenant's order-number regex is refused, or None when it is fine.

    The pattern must compile for RE2, the linear-time engine tenant patterns run on.
    """
    try:
        compiled = compile_untrusted(regex)
    except re2.error as exc:
        try:
            re.compile(regex)
        except re.error as py_exc:
            return PatternProblem("invalid_regex", {"error": str(py_exc)})
        except (OverflowError, RecursionError):
            return PatternProblem("invalid_regex", {"error": str(exc)})
        # Valid Python syntax that RE2 refuses: lookaround, backreferences, too large a repetition…
        feature = _unsupported_feature(regex)
        if feature == "other":
            return PatternProblem("invalid_regex", {"error": _re2_message(exc)})
        return PatternProblem("unsupported_feature", {"feature": feature})
    if _NESTED_QUANTIFIER.search(regex):
        return PatternProblem("nested_quantifier")
    if compiled.search("") is not None or (  # type: ignore[attr-defined]
            compiled.search("订单 order") is not None and not re.search(r"\d", regex)):  # type: ignore[attr-defined]
        return PatternProblem("matches_empty")
    if compiled.groups > 1:  # type: ignore[attr-defined]
        return PatternProblem("too_many_groups")
    return None


def _re2_message(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else exc
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
