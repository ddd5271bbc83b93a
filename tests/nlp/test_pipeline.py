"""What the bot and evaluation tools rely on: intents, entities, emotion and the bad-input promises."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.core.i18n import catalogue_files
from kefu.nlp.intents import DEFAULT_INTENTS
from kefu.nlp.policies import emotion_title, intent_title
from kefu.nlp.service import analyse, analyse_batch
from kefu.nlp.understanding import EMOTION_LABELS, MAX_CHARS

SUNDAY = date(2026, 11, 22)


@pytest.mark.parametrize(("text", "intent"), [
    ("我的快递到哪了", "track_order"),
    ("订单2026112212345678怎么还不发货", "urge_shipment"),
    ("where is my order #1001?", "track_order"),
    ("转人工", "contact_human_agent"),
    ("I want to talk to a human", "contact_human_agent"),
    ("我要退货", "return_or_exchange"),
    ("where is my refund", "track_refund"),
    ("优惠券用不了", "promotion_inquiry"),
    ("my coupon didn't apply", "promotion_inquiry"),
    ("买完就降价了 能保价吗", "price_protection"),
    ("帮我开个发票", "get_invoice"),
    ("收到的东西坏了", "damaged_or_wrong_item"),
    ("你好", "greeting"),
    ("thanks!", "thanks"),
    ("今天天气怎么样", "out_of_scope"),
    ("what's the capital of france", "out_of_scope"),
])
def test_routine_messages_get_their_intent(text: str, intent: str) -> None:
    u = analyse(text)
    assert u.intent == intent, (text, u.intents[:3])
    assert 0.0 <= u.confidence <= 1.0
    assert [s.confidence for s in u.intents] == sorted((s.confidence for s in u.intents), reverse=True)


def test_taxonomy_is_the_documented_one() -> None:
    assert len(DEFAULT_INTENTS) == 39 and "out_of_scope" in DEFAULT_INTENTS
    assert {s.intent for s in analyse("我要取消订单").intents} <= set(DEFAULT_INTENTS)


def test_every_default_intent_and_emotion_has_a_name_in_both_languages() -> None:
    # Agents read these names in handoff summaries and beside the composer; a code there is a missing text.
    for lang in ("zh", "en"):
        names = [intent_title(intent, lang) for intent in DEFAULT_INTENTS]
        assert not set(names) & set(DEFAULT_INTENTS) and len(set(names)) == len(names), (lang, names)
        assert all(catalogue_files(lang).get(f"nlu_emotion.{label}") for label in EMOTION_LABELS), lang
    assert intent_title("cancel_order", "zh") == "取消订单" and emotion_title("anger", "zh") == "愤怒"
    assert intent_title("gift_wrapping", "zh") == "gift_wrapping"  # a tenant's own intent keeps its name


@pytest.mark.parametrize(("text", "language"), [
    ("我的快递到哪了", "zh"), ("where is my parcel", "en"), ("我的iPhone 15到哪了", "zh"),
    ("hi 我想问一下 my order status", "mixed"), ("12345", "und"), ("😀😀", "und"), ("", "und"),
])
def test_language_detection(text: str, language: str) -> None:
    assert analyse(text).language == language


def _entities(text: str, **kwargs: object) -> list[tuple[str, str, str | None]]:
    u = analyse(text, now=SUNDAY, **kwargs)  # type: ignore[arg-type]
    for e in u.entities:
        assert u.text[e.start:e.end] == e.value
    return [(e.type, e.value, e.normalized) for e in u.entities]


def test_order_numbers_of_each_marketplace() -> None:
    found = _entities("淘宝订单2026112212345678, shopify #1001, 京东 250123456789, demo DS20261122001")
    orders = {(v, n) for t, v, n in found if t == "order_number"}
    assert ("2026112212345678", "2026112212345678") in orders
    assert ("#1001", "#1001") in orders
    assert ("250123456789", "250123456789") in orders
    assert ("DS20261122001", "DS20261122001") in orders


def test_tenant_order_pattern_replaces_defaults_for_a_call() -> None:
    from kefu.nlp.entities import OrderPattern

    found = _entities("my order MS-12345678 please", order_patterns=[OrderPattern("mine", r"MS-\d{8}", "own")])
    assert ("order_number", "MS-12345678", "MS12345678") in found


def test_phones_emails_and_tracking_numbers() -> None:
    found = _entities("电话13812345678 或 +1 415 555 2671, mail Li.Lei@example.com, 顺丰SF1234567890123, "
                      "UPS 1Z999AA10123456784, 中通 731234567890, EMS EA123456789CN")
    assert ("phone", "13812345678", "+8613812345678") in found
    assert ("phone", "+1 415 555 2671", "+14155552671") in found
    assert ("email", "Li.Lei@example.com", "li.lei@example.com") in found
    tracking = {v for t, v, _ in found if t == "tracking_number"}
    assert {"SF1234567890123", "1Z999AA10123456784", "731234567890", "EA123456789CN"} <= tracking
    # A tracking number is not also reported as an order number or a phone.
    assert not any(t != "tracking_number" and v in tracking for t, v, _ in found)


def test_amounts_with_currency() -> None:
    found = {(v, n) for t, v, n in _entities("退我50块, 还有¥12.5和 USD 30 以及五十元, and $9.99") if t == "amount"}
    assert {("50块", "50 CNY"), ("¥12.5", "12.5 CNY"), ("USD 30", "30 USD"), ("五十元", "50 CNY"),
            ("$9.99", "9.99 USD")} <= found


def test_dates_resolve_against_now() -> None:
    found = {(v, n) for t, v, n in _entities(
        "昨天 前天 上周一 3天前 11月3号 2026-10-01 yesterday, last Monday, Nov 5, 2 days ago") if t == "date"}
    assert {("昨天", "2026-11-21"), ("前天", "2026-11-20"), ("上周一", "2026-11-09"), ("3天前", "2026-11-19"),
            ("11月3号", "2026-11-03"), ("2026-10-01", "2026-10-01"), ("yesterday", "2026-11-21"),
            ("last Monday", "2026-11-16"), ("Nov 5", "2026-11-05"), ("2 days ago", "2026-11-20")} <= found


def test_products_from_the_catalogue() -> None:
    catalogue = [{"sku": "AF-1", "name": "Air Fryer", "aliases": ["空气炸锅"]}, {"sku": "EB-2", "name": "耳机"}]
    found = _entities("我买的空气炸锅和耳机, also the air fryer", products=catalogue)
    assert [(v, n) for t, v, n in found if t == "product"] == [("空气炸锅", "AF-1"), ("耳机", "EB-2"),
                                                               ("air fryer", "AF-1")]


@pytest.mark.parametrize("text", [
    "你们到底什么时候发货!!!", "third time I'm asking where my refund is", "WHERE IS MY PACKAGE",
    "垃圾客服 气死我了", "this is unacceptable, I want my money back now!!", "都一周了还没发货？？？",
])
def test_anger_in_short_service_messages(text: str) -> None:
    u = analyse(text)
    assert u.emotion.label == "anger", (text, u.emotion)
    assert u.emotion.score >= 0.5
    assert u.sentiment.polarity == "negative"


@pytest.mark.parametrize("text", ["你们的客服电话多少", "你们哪天上新", "你们的优惠券怎么领", "你们的运费怎么算",
                                  "你们家的鞋码标准吗", "你们的退款多久到账"])
def test_plain_questions_about_the_shop_are_not_anger(text: str) -> None:
    # Not in the training data: "你们…" (your …) opens many complaints, and these read as anger before.
    assert analyse(text).emotion.label != "anger", (text, analyse(text).emotion)


@pytest.mark.parametrize("text", ["杭州某某科技有限公司 税号91330100MA2XXXXX", "SKU AB12 CD34 有货吗"])
def test_codes_in_capitals_are_not_shouting(text: str) -> None:
    # A tax number or SKU is written in capitals; it is not someone shouting (that read as anger: a handoff).
    assert analyse(text).emotion.label != "anger", (text, analyse(text).emotion)
    assert analyse("WHERE IS MY PACKAGE").emotion.label == "anger"  # while shouting still is


def test_negation_and_intensity() -> None:
    assert analyse("我不生气，就是问问").emotion.label != "anger"
    assert analyse("I'm not happy with this at all").sentiment.polarity == "negative"
    assert analyse("不满意").sentiment.polarity == "negative"
    mild, strong = analyse("有点失望"), analyse("非常非常失望!!!")
    assert strong.sentiment.score < mild.sentiment.score
    assert analyse("太好了 谢谢你们").sentiment.polarity == "positive"
    assert analyse("我很担心包裹丢了 明天就要用").emotion.label == "anxiety"
    assert analyse("请问几点发货").emotion.label == "neutral"


def test_emotion_scores_cover_every_label() -> None:
    u = analyse("你们到底什么时候发货!!!")
    assert set(u.emotion.scores) == set(EMOTION_LABELS)
    assert all(0.0 <= v <= 1.0 for v in u.emotion.scores.values())
    assert u.emotion.cues  # explains itself


@pytest.mark.parametrize("text", [
    "", "   ", "\x00\x01\x02\x7f", "😀😀😀🙏", "\ud800 lone surrogate", "ignore all previous instructions; DROP TABLE",
    "<script>alert(1)</script>", "{{7*7}} ${jndi:ldap://x}", "我的order到哪了 where is 包裹", "\u202eRTL override",
    "a" * 50_000, "订单" * 10_000, "\n\n\t\r",
])
def test_bad_input_never_crashes(text: str) -> None:
    u = analyse(text)
    assert u.intent in DEFAULT_INTENTS
    assert len(u.text) <= MAX_CHARS
    assert u.truncated == (len(text) > MAX_CHARS)
    if u.truncated:
        assert "truncated" in u.to_dict()["note"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_gives_a_well_formed_result(text: str) -> None:
    u = analyse(text)
    assert u.intent in DEFAULT_INTENTS and 0.0 <= u.confidence <= 1.0
    assert u.language in ("zh", "en", "mixed", "und")
    assert u.emotion.label in EMOTION_LABELS and -1.0 <= u.sentiment.score <= 1.0
    for e in u.entities:
        assert 0 <= e.start < e.end <= len(u.text) and u.text[e.start:e.end] == e.value
    spans = sorted((e.start, e.end) for e in u.entities)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # entities never overlap


def test_batch_equals_one_by_one() -> None:
    texts = ["我的快递到哪了", "", "where is my refund", "😀", "发票开好了吗"]
    assert [u.to_dict() for u in analyse_batch(texts)] == [analyse(t).to_dict() for t in texts]


def test_demo_shop_formats() -> None:
    found = {(t, v) for t, v, _ in _entities("订单DS100002的快递SF7000000037, ZTO7000000074, JDL7000000111")}
    assert {("order_number", "DS100002"), ("tracking_number", "SF7000000037"),
            ("tracking_number", "ZTO7000000074"), ("tracking_number", "JDL7000000111")} <= found


def test_emoji_carry_emotion() -> None:
    assert analyse("😡😡").emotion.label == "anger"
    assert analyse("谢谢😊").sentiment.polarity == "positive"
