"""Pure rules of the bot: when to hand a conversation to people, and small language helpers.

The handoff policy errs towards people: a customer who asks for a human, who is angry or anxious, who names
a regulator or a lawyer, or whom the bot did not understand twice goes to an agent at once, with context.
Trapping an upset customer in a loop costs more than one extra human contact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kefu.core.i18n import translate
from kefu.nlp.understanding import Understanding

# Reasons, in the order they are checked (the first that applies is recorded).
EXPLICIT_REQUEST = "explicit_request"
SENSITIVE_WORDS = "sensitive_words"
ANGER = "anger"
ANXIETY = "anxiety"
VIP = "vip"
LOW_CONFIDENCE = "low_confidence"
ACTION_FAILED = "action_failed"
ORDER_SYSTEM_DOWN = "order_system_down"
ACTION_FOLLOW_UP = "action_follow_up"  # the bot told the truth (a late parcel) and a person must act on it
UNSUPPORTED_INTENT = "unsupported_intent"  # understood, but no flow and no knowledge answer
VERIFICATION_NEEDED = "verification_needed"  # a change to an order asked by a visitor who is not logged in
KNOWLEDGE_NOT_HELPFUL = "knowledge_not_helpful"  # "that did not help" after a knowledge-base answer
REASONS = (EXPLICIT_REQUEST, SENSITIVE_WORDS, ANGER, ANXIETY, VIP, LOW_CONFIDENCE, ACTION_FAILED,
           ORDER_SYSTEM_DOWN, ACTION_FOLLOW_UP, UNSUPPORTED_INTENT, VERIFICATION_NEEDED, KNOWLEDGE_NOT_HELPFUL)

_HUMAN_ZH = ("转人工", "人工客服", "人工服务", "找人工", "要人工", "真人", "接人工", "人工坐席", "转接人工", "客服人员",
             "活人")
_HUMAN_EN = re.compile(
    r"\b(agent|human|real person|live person|representative|operator|someone real|speak to (a |an )?(person|someone)"
    r"|talk to (a |an )?(person|someone)|customer service rep)\b", re.IGNORECASE)
_SENSITIVE_ZH = ("投诉", "12315", "律师", "媒体", "曝光", "消协", "消费者协会", "工商局", "市场监管", "起诉", "法院", "报警",
                 "记者", "12345", "维权")
_SENSITIVE_EN = re.compile(
    r"\b(lawyer|attorney|sue|suing|lawsuit|legal action|court|media|journalist|press|complaint|complain|"
    r"consumer (protection|association|council)|regulator|chargeback|bbb)\b", re.IGNORECASE)
_LETTERS = re.compile(r"[A-Za-z\u4e00-\u9fff]")  # "2" or "👍" says nothing about the language
_ID_LIKE = re.compile(r"\b[A-Za-z]{0,4}\d{4,}\b")
_THANKS_WORDS = r"谢谢|谢谢你|谢谢您|多谢|感谢|thanks|thank you|thanks a lot|thx|ty"
_THANKS = f"(?:{_THANKS_WORDS})"
_YES = re.compile(r"^\s*(是|是的|对|对的|好|好的|嗯|确认|确定|可以|行|没问题|要|y|yes|yeah|yep|ok|okay|sure|confirm|"
                  r"correct|right|go ahead|please do)\s*[!！。.~]*\s*(?:[,，、\s]*" + _THANKS + r"\s*[!！。.~]*)?\s*$",
                  re.IGNORECASE)
# A message that is nothing but a greeting, thanks or goodbye ("thanks, bye", "你好", "好的谢谢再见"): never the
# answer to a pending question, where "Thanks Group" (an invoice title) or "hello, 12 Baker St" may be.
_SMALL_TALK_ONLY = re.compile(
    r"^(?:[\s,，.。!！~～、]*(?:hi there|hello there|hi|hello|hey|你好|您好|哈喽|嗨|在吗|在不在|" + _THANKS_WORDS +
    r"|bye|goodbye|see you|再见|拜拜|ok|okay|好的|好|嗯|that's all|没有了|没事了))+[\s,，.。!！~～、]*$",
    re.IGNORECASE)
_NO = re.compile(r"^\s*(不|不是|不要|不用|否|算了|取消|no|nope|nah|cancel|don'?t|stop|never ?mind)\b.*$|"
                 r"^\s*(不|不是|不要|不用|算了|先不)", re.IGNORECASE)
# The customer's verdict on a knowledge-base answer, said right after it. "Not helpful" is checked first, so
# "没有帮助" / "not helpful" never count as their positive halves.
_NOT_HELPFUL = re.compile(
    r"没用|没有用|没啥用|不管用|没解决|没有解决|不能解决|解决不了|没帮助|没有帮助|没帮上|不是我要的|不是我想要的|答非所问|"
    r"都不是|看不懂|还是不行|还是不明白|"
    r"(did ?n[o']?t|does ?n[o']?t|do ?n[o']?t|not|never|wasn'?t|isn'?t) (help|work|answer|solve)|not (helpful|useful|it\b)|"
    r"\bunhelpful\b|\buseless\b|\bno help\b|none of (these|those|them)|wrong answer|that'?s not what i",
    re.IGNORECASE)
_HELPFUL = re.compile(
    r"谢谢|多谢|感谢|有用|有帮助|解决了|明白了|懂了|知道了|\bthanks?\b|thank you|\bthx\b|helpful|that helps|"
    r"that helped|\bsolved\b|got it|perfect|great", re.IGNORECASE)
_OTHER_ONE = re.compile(r"另一个|另外一个|另一单|另外一单|另一笔|另外那个|上一个|其他那个|the other( one)?|another one|"
                        r"other order|previous one", re.IGNORECASE)


@dataclass(frozen=True)
class HandoffThresholds:
    """Per-inbox handoff settings (``BotSettings.handoff``); the defaults suit a consumer shop."""

    low_confidence: float = 0.45
    low_confidence_strikes: int = 2
    anger: float = 0.6
    anxiety: float = 0.75
    vip_level: int = 3  # contacts at or above this level go to people first; 0 switches it off
    extra_sensitive_words: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, values: dict[str, Any] | None) -> HandoffThresholds:
        values = dict(values or {})
        words = tuple(values.pop("extra_sensitive_words", ()) or ())
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known, extra_sensitive_words=words)


@dataclass(frozen=True)
class HandoffDecision:
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


def asks_for_human(text: str, understanding: Understanding | None = None) -> bool:
    """转人工 / "agent" / "human", or the classifier's contact_human_agent intent with fair confidence."""
    if any(word in text for word in _HUMAN_ZH) or _HUMAN_EN.search(text):
        return True
    return bool(understanding and understanding.intent == "contact_human_agent" and understanding.confidence >= 0.5)


def sensitive_words(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The words that make a message a matter for people (regulators, lawyers, the press, complaints)."""
    found = [word for word in (*_SENSITIVE_ZH, *extra) if word and word.lower() in text.lower()]
    found += [m.group(0).lower() for m in _SENSITIVE_EN.finditer(text)]
    return sorted(set(found))


def decide_handoff(*, text: str, understanding: Understanding, strikes: int, vip_level: int,
                   thresholds: HandoffThresholds, first_turn: bool) -> HandoffDecision | None:
    """The reason to hand this message to people now, or None to let the bot answer.

    ``strikes`` counts earlier consecutive low-confidence turns; this one adds one when it is low too.
    A VIP is handed over on their first message only, so that a VIP who chooses to continue with the bot
    after the handoff was declined by routing is not handed over on every line.
    """
    if asks_for_human(text, understanding):
        return HandoffDecision(EXPLICIT_REQUEST)
    words = sensitive_words(text, thresholds.extra_sensitive_words)
    if words or understanding.intent == "complaint" and understanding.confidence >= 0.6:
        return HandoffDecision(SENSITIVE_WORDS, {"words": words})
    scores = understanding.emotion.scores or {understanding.emotion.label: understanding.emotion.score}
    if scores.get("anger", 0.0) >= thresholds.anger:
        return HandoffDecision(ANGER, {"score": round(scores["anger"], 3)})
    if scores.get("anxiety", 0.0) >= thresholds.anxiety:
        return HandoffDecision(ANXIETY, {"score": round(scores["anxiety"], 3)})
    if first_turn and thresholds.vip_level > 0 and vip_level >= thresholds.vip_level:
        return HandoffDecision(VIP, {"vip_level": vip_level})
    if is_low_confidence(understanding, thresholds) and strikes + 1 >= thresholds.low_confidence_strikes:
        return HandoffDecision(LOW_CONFIDENCE, {"strikes": strikes + 1})
    return None


def is_low_confidence(understanding: Understanding, thresholds: HandoffThresholds) -> bool:
    return understanding.intent == "out_of_scope" or understanding.confidence < thresholds.low_confidence


# "Never mind" to the question the bot is asking: the whole message, so "不凡科技有限公司" stays an invoice title.
_DECLINE = re.compile(r"^(?:不用了|不用|不要了|不需要了|算了|算了吧|不了|先不了|取消|不改了|不开了|no|nope|no thanks|"
                      r"cancel|never ?mind|forget it|stop)[\s,，.。!！~～]*$", re.IGNORECASE)
# A yes or a bit of small talk is short; longer text is never one, and is not fed to the patterns above (their
# runs of optional spaces would take time growing with a long message's length).
_SHORT = 60


def is_yes(text: str) -> bool:
    text = text.strip()
    return len(text) <= _SHORT and bool(_YES.match(text))


def is_decline(text: str) -> bool:
    text = text.strip()
    return len(text) <= _SHORT and bool(_DECLINE.match(text))


def only_small_talk(text: str) -> bool:
    text = text.strip()
    return len(text) <= _SHORT and bool(_SMALL_TALK_ONLY.match(text))


def is_no(text: str) -> bool:
    return bool(_NO.match(text.strip()))


def not_helpful(text: str) -> bool:
    """"没用" / "没解决" / "that did not help" / "none of these": the last knowledge-base answer failed."""
    return bool(_NOT_HELPFUL.search(text))


def helpful(text: str) -> bool:
    """"谢谢" / "有用" / "thanks, that helps" after a knowledge-base answer (and not a "not helpful")."""
    return not not_helpful(text) and bool(_HELPFUL.search(text))


def means_other_one(text: str) -> bool:
    """"另一个" / "the other one": the customer means the order before the one we were talking about."""
    return bool(_OTHER_ONE.search(text))


def reply_language(understanding: Understanding, previous: str | None, default: str) -> str:
    """Answer in the customer's language; mixed or unknown text keeps the language of the conversation."""
    text = understanding.text or ""
    for entity in sorted(understanding.entities, key=lambda e: e.start, reverse=True):
        text = text[:entity.start] + " " + text[entity.end:]  # "DS100004" alone says nothing either
    if understanding.language in ("zh", "en") and _LETTERS.search(_ID_LIKE.sub(" ", text)):
        return understanding.language
    return previous if previous in ("zh", "en") else default


def emotion_label(understanding: Understanding) -> str:
    return understanding.emotion.label or "neutral"


def routing_priority(reason: str, vip_level: int) -> int:
    """Angry, anxious and VIP customers are served first (higher is sooner)."""
    base = {ANGER: 20, SENSITIVE_WORDS: 20, ANXIETY: 15, ORDER_SYSTEM_DOWN: 10, ACTION_FAILED: 10}.get(reason, 0)
    return base + (10 if vip_level >= 3 else 5 if vip_level > 0 else 0)


def clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wait_in_words(seconds: float, lang: str) -> tuple[int, str]:
    """An expected wait as whole minutes (at least one) and in words of ``lang`` ("1 minute", "3 minutes", "3 分钟")."""
    minutes = max(1, round(seconds / 60))
    return minutes, translate("bot_wait_one_minute" if minutes == 1 else "bot_wait_minutes", lang, minutes=minutes)
