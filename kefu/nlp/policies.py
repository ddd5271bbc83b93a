"""Pure rules of the nlp domain: what a custom intent name, a training example and an order pattern may be."""

from __future__ import annotations

import re

from kefu.nlp.intents import DEFAULT_INTENTS
from kefu.nlp.language import clean, detect_language, squash_spaces

MAX_EXAMPLE_CHARS = 500
MAX_EXAMPLES_PER_TENANT = 20_000
# A quantified group that itself contains a quantifier ("(a+)+", "(\\d*)*") can backtrack exponentially;
# tenant patterns run on every message, so such patterns are refused outright.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")


def is_reserved_intent(name: str) -> bool:
    """Default intents cannot be redefined as custom ones (their examples can be extended instead)."""
    return name in DEFAULT_INTENTS


def normalise_example(text: str) -> str | None:
    """The example as stored (control characters removed, spaces squashed), or None if it is unusable."""
    text = squash_spaces(clean(text))[:MAX_EXAMPLE_CHARS]
    return text if any(ch.isalnum() for ch in text) else None


def example_language(text: str) -> str:
    return detect_language(text)


def order_pattern_problem(regex: str) -> str | None:
    """Why a tenant's order-number regex is refused, or None when it is fine."""
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    if _NESTED_QUANTIFIER.search(regex):
        return "nested quantifiers are not allowed (they can make matching exponentially slow)"
    if compiled.match("") is not None or compiled.search("订单 order") is not None and not re.search(r"\d", regex):
        return "the pattern must not match empty text"
    if compiled.groups > 1:
        return "use at most one capturing group (the order number)"
    return None
