"""Declarative dialogue flows: YAML documents with slots, prompts, confirmation, a skill and reply templates.

A flow is data, so a shop can reword or retune it per tenant through the API without a deployment. The
built-in flows live in ``kefu/bot/flows/*.yaml``; a tenant's saved version of a flow replaces the built-in
one of the same name. ``validate_flow`` explains every problem with a path (``slots[0].prompt.en``), so an
admin who breaks a flow sees what to fix, and a broken flow is never stored.

One special document, ``brand``, holds the shop's tone (a prefix such as "亲，") and the shared texts:
greeting, thanks, clarification, the handoff announcements.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

FLOW_DIR = Path(__file__).with_name("flows")
LANGS = ("zh", "en")
NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
SLOT_TYPES = ("order", "choice", "text")
BRAND = "brand"


@dataclass(frozen=True)
class Skill:
    """A call into the order system that a flow may name; ``writes`` skills change something for real."""

    name: str
    needs_order: bool
    writes: bool
    codes: tuple[str, ...]  # outcome codes it can answer; templates are keyed by them
    failures: tuple[str, ...] = ()  # codes after which people must take over (the action failed)


SKILLS: dict[str, Skill] = {s.name: s for s in (
    Skill("track_order", True, False, ("ok", "not_shipped", "no_tracking", "cancelled")),
    Skill("delivery_estimate", True, False, ("ok", "delivered", "unknown", "cancelled")),
    Skill("urge_shipment", True, True, ("ok", "late", "already_shipped", "cancelled"), ("failed",)),
    Skill("cancel_order", True, True, ("ok", "already_shipped", "not_cancellable", "already_cancelled"),
          ("failed",)),
    Skill("change_address", True, True, ("ok", "already_shipped", "not_changeable"), ("failed",)),
    Skill("return_or_exchange", True, True, ("ok", "not_eligible"), ("failed",)),
    Skill("refund_status", True, False, ("ok", "none", "refunded")),
    Skill("refund_policy", False, False, ("ok",)),
    Skill("price_protection", True, False, ("ok", "no_drop", "not_eligible")),
    Skill("request_invoice", True, True, ("ok", "already_issued", "not_eligible"), ("failed",)),
    Skill("explain_promotions", True, False, ("ok", "none")),
)}
# Texts the brand document must define (each in every language).
BRAND_TEXTS = ("greeting", "thanks", "goodbye", "clarify", "handoff", "handoff_wait", "handoff_offline",
               "order_system_down", "ask_order_number", "order_not_found", "order_not_yours",
               "verification_needed", "confirm_declined", "confirm_again", "no_flow", "truncated")


class FlowInvalid(Exception):
    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['path']}: {p['problem']}" for p in problems))


@dataclass(frozen=True)
class Slot:
    name: str
    type: str
    prompt: dict[str, str]
    required: bool = True
    # for choice: {value, zh: [words], en: [words], catch_all: bool}; a catch-all ("other") is an answer only
    # to its own question, never read out of a message that answers another
    options: tuple[dict[str, Any], ...] = ()
    min_length: int = 0
    max_length: int = 500
    pattern: str | None = None
    invalid: dict[str, str] | None = None


@dataclass(frozen=True)
class Flow:
    name: str
    intents: tuple[str, ...]
    title: dict[str, str]
    skill: str | None
    slots: tuple[Slot, ...]
    confirm: dict[str, str] | None
    replies: dict[str, dict[str, str]]
    done: bool = True  # the flow settles the contact (counts as contained) when its skill succeeds
    texts: dict[str, dict[str, str]] = field(default_factory=dict)  # brand only
    tone: dict[str, dict[str, str]] = field(default_factory=dict)  # brand only: prefix/suffix per language
    source: str = ""

    def reply(self, code: str, language: str) -> str | None:
        entry = self.replies.get(code) or self.replies.get("default")
        return entry.get(language) or entry.get("en") if entry else None


def _texts(value: Any, path: str, problems: list[dict[str, str]], *, required: bool = True) -> dict[str, str]:
    """A ``{zh, en}`` template: both languages, non-empty, valid ``{placeholders}``."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        problems.append({"path": path, "problem": "must be a mapping with zh and en texts"})
        return {}
    out: dict[str, str] = {}
    for lang in LANGS:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            problems.append({"path": f"{path}.{lang}", "problem": f"missing the {lang} text"})
            continue
        try:
            list(string.Formatter().parse(text))
        except ValueError as exc:
            problems.append({"path": f"{path}.{lang}", "problem": f"bad placeholder: {exc}"})
            continue
        out[lang] = text
    extra = set(value) - set(LANGS)
    if extra:
        problems.append({"path": path, "problem": f"unknown languages {sorted(extra)} (use zh and en)"})
    return out


def _slot(raw: Any, path: str, problems: list[dict[str, str]]) -> Slot | None:
    if not isinstance(raw, dict):
        problems.append({"path": path, "problem": "a slot must be a mapping"})
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append({"path": f"{path}.name", "problem": "must be lower_snake_case, 2-64 characters"})
        name = "?"
    kind = raw.get("type")
    if kind not in SLOT_TYPES:
        problems.append({"path": f"{path}.type", "problem": f"must be one of {list(SLOT_TYPES)}"})
    prompt = _texts(raw.get("prompt"), f"{path}.prompt", problems)
    options: list[dict[str, Any]] = []
    if kind == "choice":
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or not raw_options:
            problems.append({"path": f"{path}.options", "problem": "a choice slot needs a list of options"})
        else:
            for i, option in enumerate(raw_options):
                where = f"{path}.options[{i}]"
                if not isinstance(option, dict) or not isinstance(option.get("value"), str):
                    problems.append({"path": where, "problem": "an option needs a value and zh/en words"})
                    continue
                words = {lang: option.get(lang) for lang in LANGS}
                for lang, listed in words.items():
                    if not isinstance(listed, list) or not all(isinstance(w, str) and w for w in listed):
                        problems.append({"path": f"{where}.{lang}", "problem": "must be a list of words"})
                if not isinstance(option.get("catch_all", False), bool):
                    problems.append({"path": f"{where}.catch_all", "problem": "must be true or false"})
                options.append({"value": option["value"], **{lang: list(words[lang] or []) for lang in LANGS},
                                "catch_all": option.get("catch_all") is True})
    pattern = raw.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            problems.append({"path": f"{path}.pattern", "problem": f"not a valid regular expression: {exc}"})
    bounds = {}
    for key in ("min_length", "max_length"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            problems.append({"path": f"{path}.{key}", "problem": "must be a non-negative integer"})
        elif value is not None:
            bounds[key] = value
    invalid = _texts(raw.get("invalid"), f"{path}.invalid", problems, required=False) or None
    unknown = set(raw) - {"name", "type", "prompt", "options", "pattern", "min_length", "max_length", "invalid",
                          "required"}
    if unknown:
        problems.append({"path": path, "problem": f"unknown keys {sorted(unknown)}"})
    return Slot(name=name, type=str(kind), prompt=prompt, required=bool(raw.get("required", True)),
                options=tuple(options), pattern=pattern, invalid=invalid, **bounds)


def parse_flow(source: str, *, expected_name: str | None = None) -> Flow:
    """Parse and validate a flow (or the brand document); raises ``FlowInvalid`` listing every problem."""
    problems: list[dict[str, str]] = []
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        raise FlowInvalid([{"path": where, "problem": f"not valid YAML: {getattr(exc, 'problem', exc)}"}]) from None
    if not isinstance(raw, dict):
        raise FlowInvalid([{"path": "document", "problem": "must be a YAML mapping"}])
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append({"path": "name", "problem": "must be lower_snake_case, 2-64 characters"})
    elif expected_name is not None and name != expected_name:
        problems.append({"path": "name", "problem": f"must be {expected_name!r} (the name in the URL)"})
    if name == BRAND:
        return _parse_brand(raw, source, problems)
    intents = raw.get("intents")
    if not isinstance(intents, list) or not intents or not all(isinstance(i, str) and i for i in intents):
        problems.append({"path": "intents", "problem": "must be a non-empty list of intent names"})
        intents = []
    title = _texts(raw.get("title"), "title", problems)
    skill = raw.get("skill")
    if skill is not None and skill not in SKILLS:
        problems.append({"path": "skill", "problem": f"unknown skill {skill!r}; known: {sorted(SKILLS)}"})
    slots: list[Slot] = []
    raw_slots = raw.get("slots") or []
    if not isinstance(raw_slots, list):
        problems.append({"path": "slots", "problem": "must be a list"})
        raw_slots = []
    for i, raw_slot in enumerate(raw_slots):
        slot = _slot(raw_slot, f"slots[{i}]", problems)
        if slot is not None:
            slots.append(slot)
    names = [s.name for s in slots]
    if len(set(names)) != len(names):
        problems.append({"path": "slots", "problem": "slot names must be unique"})
    if skill in SKILLS and SKILLS[skill].needs_order and "order" not in {s.type for s in slots}:
        problems.append({"path": "slots", "problem": f"skill {skill!r} needs a slot of type order"})
    confirm = _texts(raw.get("confirm"), "confirm", problems, required=False) or None
    replies: dict[str, dict[str, str]] = {}
    raw_replies = raw.get("replies")
    if not isinstance(raw_replies, dict) or not raw_replies:
        problems.append({"path": "replies", "problem": "must map outcome codes to zh/en texts"})
        raw_replies = {}
    for code, texts in raw_replies.items():
        replies[str(code)] = _texts(texts, f"replies.{code}", problems)
    if skill in SKILLS:
        allowed = {*SKILLS[skill].codes, *SKILLS[skill].failures, "default", "declined"}
        unknown = sorted(set(replies) - allowed)
        if unknown:
            problems.append({"path": "replies", "problem": f"codes {unknown} are not answered by {skill!r}; "
                                                           f"use {sorted(allowed)}"})
        if "ok" not in replies and "default" not in replies:
            problems.append({"path": "replies", "problem": "needs an ok or a default reply"})
    elif skill is None and "default" not in replies:
        problems.append({"path": "replies", "problem": "a flow without a skill needs a default reply"})
    unknown_keys = set(raw) - {"name", "intents", "title", "skill", "slots", "confirm", "replies", "done",
                               "description"}
    if unknown_keys:
        problems.append({"path": "document", "problem": f"unknown keys {sorted(unknown_keys)}"})
    if problems:
        raise FlowInvalid(problems)
    return Flow(name=name, intents=tuple(intents), title=title, skill=skill, slots=tuple(slots), confirm=confirm,
                replies=replies, done=bool(raw.get("done", True)), source=source)


def _parse_brand(raw: dict[str, Any], source: str, problems: list[dict[str, str]]) -> Flow:
    tone: dict[str, dict[str, str]] = {}
    raw_tone = raw.get("tone") or {}
    if not isinstance(raw_tone, dict):
        problems.append({"path": "tone", "problem": "must map zh/en to {prefix, suffix}"})
        raw_tone = {}
    for lang in LANGS:
        entry = raw_tone.get(lang) or {}
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k, ""), str) for k in ("prefix", "suffix")):
            problems.append({"path": f"tone.{lang}", "problem": "prefix and suffix must be strings"})
            entry = {}
        tone[lang] = {"prefix": entry.get("prefix", ""), "suffix": entry.get("suffix", "")}
    texts: dict[str, dict[str, str]] = {}
    raw_texts = raw.get("texts")
    if not isinstance(raw_texts, dict):
        problems.append({"path": "texts", "problem": "must map text names to zh/en texts"})
        raw_texts = {}
    for key in BRAND_TEXTS:
        if key not in raw_texts:
            problems.append({"path": f"texts.{key}", "problem": "missing"})
    for key, value in raw_texts.items():
        texts[str(key)] = _texts(value, f"texts.{key}", problems)
    unknown = set(raw) - {"name", "tone", "texts", "description"}
    if unknown:
        problems.append({"path": "document", "problem": f"unknown keys {sorted(unknown)}"})
    if problems:
        raise FlowInvalid(problems)
    return Flow(name=BRAND, intents=(), title={"zh": "品牌语气", "en": "Brand tone"}, skill=None, slots=(),
                confirm=None, replies={}, texts=texts, tone=tone, source=source)


@cache
def builtin_sources() -> dict[str, str]:
    """The shipped flows by name (read once)."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(FLOW_DIR.glob("*.yaml"))}


@cache
def builtin_flows() -> dict[str, Flow]:
    return {name: parse_flow(source, expected_name=name) for name, source in builtin_sources().items()}


class FlowSet:
    """The flows in force for one tenant: built-ins overlaid with the tenant's saved versions."""

    def __init__(self, overrides: dict[str, Flow] | None = None) -> None:
        self.flows = {**builtin_flows(), **(overrides or {})}
        self.brand = self.flows[BRAND]
        self._by_intent: dict[str, Flow] = {}
        for flow in self.flows.values():
            for intent in flow.intents:
                self._by_intent.setdefault(intent, flow)

    def for_intent(self, intent: str) -> Flow | None:
        return self._by_intent.get(intent)

    def text(self, key: str, language: str, **params: Any) -> str:
        entry = self.brand.texts.get(key) or builtin_flows()[BRAND].texts.get(key) or {}
        return render(entry.get(language) or entry.get("en") or key, params)

    def styled(self, text: str, language: str) -> str:
        """Wrap a reply in the brand's tone (prefix and suffix) for that language."""
        tone = self.brand.tone.get(language) or {}
        return f"{tone.get('prefix', '')}{text}{tone.get('suffix', '')}"


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, params: dict[str, Any]) -> str:
    """Fill ``{placeholders}``; one a template names but the call did not provide becomes empty."""
    try:
        return string.Formatter().vformat(template, (), _Blank({k: "" if v is None else v for k, v in params.items()}))
    except (ValueError, IndexError, AttributeError, KeyError):
        return template
