"""Marketplace payloads (written from the providers' documented schemas) become canonical orders."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefu.cli import app as cli
from kefu.core.errors import ValidationFailed
from kefu.integrations.commerce.normalizers import core_json, normalize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load(provider: str, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((FIXTURES / provider / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("provider", ["shopify", "woocommerce", "taobao"])
def test_every_fixture_adds_up(provider: str) -> None:
    for path in sorted((FIXTURES / provider).glob("*.json")):
        order = normalize(provider, json.loads(path.read_text(encoding="utf-8")))
        assert order.check_consistency() == [], path.name
        assert order.marketplace == provider
        assert sum(i.paid for i in order.items) + order.shipping_fee == order.total_paid


def test_shopify_order_with_discount_allocations_and_tax() -> None:
    order = normalize("shopify", load("shopify", "order_paid_fulfilled.json"))
    core = core_json(order)
    assert core["order_id"] == "450789469" and core["status"] == "shipped" and core["currency"] == "USD"
    assert core["total_paid"] == "409.94"
    assert [i["sku"] for i in core["items"]] == ["IPOD2008GREEN", "IPOD2008RED"]
    assert core["shipments"] == [{"carrier": "USPS", "tracking_number": "1Z2345"}]
    assert order.buyer.buyer_id == "207119551" and order.shipping_address.country == "US"


def test_shopify_refund_lines_are_deducted() -> None:
    order = normalize("shopify", load("shopify", "order_partially_refunded.json"))
    assert order.status == "partially_refunded"
    tee = order.item("866550311766439020")
    assert tee.refunded_quantity == 1 and tee.refunded_amount == Decimal("81.50")
    assert order.refunded_total == Decimal("81.50")


def test_woocommerce_line_totals_include_coupons_and_tax() -> None:
    order = normalize("woocommerce", load("woocommerce", "order_processing.json"))
    assert [(i.sku, i.paid) for i in order.items] == [("WOO-1", Decimal("4.30")), ("SHIP-BLK-M", Decimal("22.05"))]
    assert order.shipping_fee == Decimal("10.00") and order.total_paid == Decimal("36.35")
    assert order.shipments[0].tracking_number == "JD014600003123456789" and order.status == "shipped"
    assert order.promotions[0].code == "save5"
    refunded = normalize("woocommerce", load("woocommerce", "order_refunded_partly.json"))
    assert refunded.status == "partially_refunded" and refunded.refunded_total == Decimal("25.00")


def test_taobao_trade_uses_the_divided_payment_and_beijing_time() -> None:
    order = normalize("taobao", load("taobao", "trade_fullinfo_shipped.json"))
    assert order.order_id == "3692821530135671234" and order.currency == "CNY"
    assert [i.paid for i in order.items] == [Decimal("364.67"), Decimal("182.33")]
    assert order.created_at.isoformat() == "2026-11-10T16:03:12+00:00"  # 00:03 in Beijing
    assert order.promotions[0].kind == "spend_save"
    assert order.shipments[0].tracking_number == "SF1400000000001" and len(order.shipments) == 1
    refunded = normalize("taobao", load("taobao", "trade_refund_success.json"))
    assert refunded.status == "partially_refunded" and refunded.items[0].refunded_amount == Decimal("60.00")


@pytest.mark.parametrize(("provider", "mutate", "reason"), [
    ("shopify", lambda p: p["order"].pop("line_items"), "missing_field"),
    ("shopify", lambda p: p["order"]["line_items"][0].update(quantity=-1), "invalid_quantity"),
    ("shopify", lambda p: p["order"].update(total_price="-5"), "negative_amount"),
    ("woocommerce", lambda p: p.pop("currency"), "missing_field"),
    ("woocommerce", lambda p: p["line_items"][0].update(quantity=0), "invalid_quantity"),
    ("woocommerce", lambda p: p.update(total="abc"), "not_a_number"),
    ("woocommerce", lambda p: p.update(status="teleported"), "unknown_status"),
    ("taobao", lambda p: p["trade_fullinfo_get_response"]["trade"].pop("tid"), "missing_field"),
    ("taobao", lambda p: p["trade_fullinfo_get_response"]["trade"]["orders"]["order"][0].update(num="-2"),
     "invalid_quantity"),
])
def test_bad_payloads_are_refused_with_a_reason(provider: str, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    name = {"shopify": "order_paid_fulfilled.json", "woocommerce": "order_processing.json",
            "taobao": "trade_fullinfo_shipped.json"}[provider]
    payload = load(provider, name)
    mutate(payload)
    with pytest.raises(ValidationFailed) as exc:
        normalize(provider, payload)
    assert exc.value.code == "invalid_order_payload" and exc.value.details["reason"] == reason


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValidationFailed) as exc:
        normalize("ebay", {})
    assert exc.value.code == "unknown_format"


def test_cli_prints_the_stable_core_keys() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["commerce", "normalize", "--format", "woocommerce",
                              str(FIXTURES / "woocommerce" / "order_processing.json")])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) == {"order_id", "marketplace", "status", "currency", "total_paid", "items", "shipments"}
    assert data["total_paid"] == "36.35" and data["items"][0] == {
        "sku": "WOO-1", "title": "Woo Single #1", "quantity": 2, "unit_price": "3.00", "paid": "4.30"}
    bad = runner.invoke(cli, ["commerce", "normalize", "--format", "amazon",
                              str(FIXTURES / "woocommerce" / "order_processing.json")])
    assert bad.exit_code == 2 and json.loads(bad.stderr)["error"]["code"] == "unknown_format"
    broken = runner.invoke(cli, ["commerce", "normalize", "--format", "taobao", "-"], input='{"trade": {"tid": 1}}')
    assert broken.exit_code == 2 and json.loads(broken.stderr)["error"]["code"] == "invalid_order_payload"
