"""The handoff policy and the small language rules, on real understanding from the nlp pipeline."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.bot import policies
from kefu.bot.adapters import CommerceOrderDesk
from kefu.bot.flows import FlowSet, builtin_sources, parse_flow, render
from kefu.commerce.schemas import Order, Shipment, TrackingEvent
from kefu.core.errors import Conflict
from kefu.nlp import service as nlp_service

DEFAULT = policies.HandoffThresholds()


def decide(text: str, *, strikes: int = 0, vip_level: int = 0, first_turn: bool = False,
           thresholds: policies.HandoffThresholds = DEFAULT) -> str | None:
    decision = policies.decide_handoff(text=text, understanding=nlp_service.analyse(text), strikes=strikes,
                                       vip_level=vip_level, thresholds=thresholds, first_turn=first_turn)
    return decision.reason if decision else None


@pytest.mark.parametrize("text", ["转人工", "人工客服", "我要找真人", "agent please", "I want to talk to a human",
                                  "can I speak to someone"])
def test_explicit_requests_for_a_person(text: str) -> None:
    assert decide(text) == "explicit_request"


@pytest.mark.parametrize("text", ["我要投诉", "再不处理我就打12315", "我会找律师", "我要找媒体曝光",
                                  "I'll get my lawyer involved", "I'm going to the media with this"])
def test_sensitive_words(text: str) -> None:
    assert decide(text) == "sensitive_words"


@pytest.mark.parametrize("text", ["你们到底什么时候发货!!!", "气死我了，垃圾服务", "this is the third time I'm asking!!!"])
def test_angry_customers_go_to_people(text: str) -> None:
    assert decide(text) in ("anger", "sensitive_words")


def test_routine_questions_stay_with_the_bot() -> None:
    for text in ("我的快递到哪了", "where is my parcel", "怎么退货", "发票怎么开"):
        assert decide(text) is None, text


def test_vip_goes_to_people_on_the_first_message_only() -> None:
    assert decide("我的快递到哪了", vip_level=3, first_turn=True) == "vip"
    assert decide("我的快递到哪了", vip_level=3, first_turn=False) is None
    assert decide("我的快递到哪了", vip_level=3, first_turn=True,
                  thresholds=policies.HandoffThresholds(vip_level=0)) is None


def test_low_confidence_twice() -> None:
    assert decide("qwpoeiru zxmcvn", strikes=0) is None
    assert decide("qwpoeiru zxmcvn", strikes=1) == "low_confidence"


def test_extra_sensitive_words_per_inbox() -> None:
    thresholds = policies.HandoffThresholds.from_settings({"extra_sensitive_words": ["黑猫"], "anger": 0.9})
    assert decide("我去黑猫上说", thresholds=thresholds) == "sensitive_words"


@pytest.mark.parametrize(("text", "yes", "no"), [("是", True, False), ("好的", True, False), ("yes", True, False),
                                                  ("OK!", True, False), ("不要", False, True), ("算了", False, True),
                                                  ("no thanks", False, True), ("我的快递", False, False),
                                                  ("好的，谢谢", True, False), ("yes, thank you!", True, False),
                                                  ("yes" + " " * 3000 + "x", False, False)])
def test_yes_and_no(text: str, yes: bool, no: bool) -> None:
    assert (policies.is_yes(text), policies.is_no(text)) == (yes, no)


@pytest.mark.parametrize(("text", "only"), [("thanks, bye", True), ("你好", True), ("好的谢谢再见！", True),
                                            ("Thanks Group Ltd", False), ("hello, 12 Baker Street", False),
                                            ("你好科技有限公司", False), ("bye " * 400 + "x", False)])
def test_only_small_talk(text: str, only: bool) -> None:
    assert policies.only_small_talk(text) is only


def test_the_other_one() -> None:
    assert policies.means_other_one("另一个订单呢") and policies.means_other_one("and the other one?")
    assert not policies.means_other_one("我的订单")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_the_policy_never_fails_on_any_text(text: str) -> None:
    understanding = nlp_service.analyse(text)
    decision = policies.decide_handoff(text=text, understanding=understanding, strikes=1, vip_level=0,
                                       thresholds=DEFAULT, first_turn=True)
    assert decision is None or decision.reason in policies.REASONS
    assert policies.reply_language(understanding, None, "zh") in ("zh", "en")


@given(st.text(max_size=80), st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4))
def test_templates_render_whatever_the_placeholders(template: str, params: dict[str, str]) -> None:
    assert isinstance(render(template, params), str)


@pytest.mark.parametrize(("seconds", "lang", "said"), [
    (20, "en", "The expected wait is about 1 minute."), (65, "en", "The expected wait is about 1 minute."),
    (170, "en", "The expected wait is about 3 minutes."), (170, "zh", "当前预计等待约 3 分钟，请稍候。")])
def test_the_expected_wait_reads_as_a_sentence(seconds: int, lang: str, said: str) -> None:
    minutes, wait = policies.wait_in_words(seconds, lang)
    assert FlowSet().text("handoff_wait", lang, minutes=minutes, wait=wait) == said
    # A brand a tenant saved before {wait} existed, whose text uses {minutes}, still reads right.
    saved = builtin_sources()["brand"].replace('en: "The expected wait is about {wait}."', 'en: "About {minutes} min."')
    assert saved != builtin_sources()["brand"]
    tenant = FlowSet({"brand": parse_flow(saved, expected_name="brand")})
    assert tenant.text("handoff_wait", "en", minutes=minutes, wait=wait) == f"About {minutes} min."


@pytest.mark.parametrize("status", ["picked_up", "in_transit", "out_for_delivery", "delivered", "exception",
                                    "pending", "returned"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_parcel_state_reads_as_words(status: str, lang: str) -> None:
    """The tracking answer names the carrier's state in the customer's language, never the connector's code."""
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    order = Order(order_id="DS1", marketplace="demo_shop", status="shipped", currency="CNY", created_at=now,
                  items=[], subtotal=Decimal("0"), shipping_fee=Decimal("0"), total_paid=Decimal("0"),
                  shipments=[Shipment(carrier="ZTO", tracking_number="ZTO1", shipped_at=now, events=[
                      TrackingEvent(at=now, node="杭州转运中心 Hangzhou hub", status=status)])])
    said = CommerceOrderDesk(None, now=now)._shipment_params(order, lang)["status"]  # type: ignore[arg-type]
    assert said and "_" not in said, said  # "picked_up" came through as it was
    assert (re.search(r"[\u4e00-\u9fff]", said) is not None) == (lang == "zh"), said


def test_a_refused_action_names_the_order_state_in_words() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    order = Order(order_id="DS1", marketplace="demo_shop", status="partially_refunded", currency="CNY", created_at=now,
                  items=[], subtotal=Decimal("0"), shipping_fee=Decimal("0"), total_paid=Decimal("0"))
    refusal = Conflict("order_not_cancellable", details={"reasons": [{"zh": "已有退款", "en": "a refund exists"}]})
    desk = CommerceOrderDesk(None, now=now)  # type: ignore[arg-type]
    said = {lang: desk._refusal(refusal, "refused", order, lang).params["status"] for lang in ("zh", "en")}
    assert said == {"zh": "部分退款", "en": "partly refunded"}


def test_a_scan_names_its_place_once() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    order = Order(order_id="DS1", marketplace="demo_shop", status="shipped", currency="CNY", created_at=now,
                  items=[], subtotal=Decimal("0"), shipping_fee=Decimal("0"), total_paid=Decimal("0"),
                  shipments=[Shipment(carrier="ZTO", tracking_number="ZTO1", shipped_at=now, events=[TrackingEvent(
                      at=now, node="杭州转运中心 Hangzhou hub", status="in_transit",
                      description="到达 Arrived at Hangzhou hub")])])
    desk = CommerceOrderDesk(None, now=now)  # type: ignore[arg-type]
    en, zh = (desk._shipment_params(order, lang)["timeline"] for lang in ("en", "zh"))
    assert en.count("Hangzhou hub") == 1 and en.endswith("Arrived at Hangzhou hub"), en
    assert zh.endswith("杭州转运中心 到达"), zh
