"""Canonical order shapes shared by every connector, the rules, the bot and the agent UI.

Money is ``Decimal`` (JSON: a decimal string such as ``"12.30"``) in the order's ``currency``; never float.
Every connector (demo shop, REST mapping, Shopify / WooCommerce / Taobao normalisers) produces an ``Order``;
``Order.check_consistency`` states the invariants they must all keep (item ``paid`` amounts plus the
shipping fee equal ``total_paid``, nothing negative, one currency).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_serializer

from kefu.core.clock import isoformat

# Decimal in Python, decimal string in JSON (never a float on the wire).
Money = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")]

Marketplace = str  # "demo_shop", "shopify", "woocommerce", "taobao", or a REST connector's label
OrderStatus = Literal["unpaid", "paid", "pre_sale", "shipped", "delivered", "completed", "cancelled",
                      "partially_refunded", "refunded", "returned"]
SaleType = Literal["normal", "pre_sale", "flash_sale"]
PromotionKind = Literal["coupon", "spend_save", "item_discount", "shipping_discount"]
ShipmentStatus = Literal["pending", "in_transit", "delivered", "exception", "returned"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_serializer("*", when_used="json")
    def _ts(self, value: Any) -> Any:
        return isoformat(value) if isinstance(value, datetime) else value


class Address(_Model):
    name: str | None = None
    phone: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2, e.g. "CN"
    province: str | None = None
    city: str | None = None
    district: str | None = None
    line1: str | None = None
    postcode: str | None = None


class Buyer(_Model):
    """The buyer as the marketplace knows them; these identities link orders to Kefu contacts."""

    buyer_id: str | None = None  # marketplace customer id (demo shop: "c1001")
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class OrderItem(_Model):
    line_id: str
    sku: str
    title: str
    category: str = "general"
    quantity: int = Field(ge=1)
    unit_price: Money = Field(ge=0)
    # What the buyer paid for the whole line after item discounts and its share of order-level discounts.
    paid: Money = Field(ge=0)
    refunded_quantity: int = Field(default=0, ge=0)
    refunded_amount: Money = Field(default=Decimal("0"), ge=0)
    returned_quantity: int = Field(default=0, ge=0)
    customised: bool = False
    hygiene: bool = False  # hygiene goods (underwear, cosmetics) cannot be returned once opened
    opened: bool = False
    price_protected: bool = False  # price protection already granted once for this line


class Payment(_Model):
    method: str
    amount: Money = Field(ge=0)
    status: Literal["pending", "paid", "refunded", "partially_refunded", "failed"] = "paid"
    transaction_id: str | None = None
    paid_at: datetime | None = None


class Promotion(_Model):
    kind: PromotionKind
    title: str
    amount: Money = Field(ge=0)
    code: str | None = None
    threshold: Money | None = None  # spend-X-save-Y: X
    sku: str | None = None  # item discounts: the line it applies to


class TrackingEvent(_Model):
    at: datetime
    node: str  # where the parcel is, e.g. "上海转运中心 Shanghai hub"
    status: str  # picked_up, in_transit, out_for_delivery, delivered, exception
    description: str = ""


class Shipment(_Model):
    carrier: str
    tracking_number: str
    status: ShipmentStatus = "in_transit"
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    expected_hours_per_node: int | None = None  # carrier-specific expectation; rules default otherwise
    events: list[TrackingEvent] = Field(default_factory=list)


class ReturnLine(_Model):
    line_id: str
    quantity: int = Field(ge=1)


class ReturnRequest(_Model):
    return_id: str
    kind: Literal["return", "exchange"] = "return"
    status: Literal["requested", "approved", "received", "completed", "rejected", "cancelled"] = "requested"
    reason: str = "no_reason"
    lines: list[ReturnLine] = Field(default_factory=list)
    created_at: datetime | None = None


class Refund(_Model):
    refund_id: str
    amount: Money = Field(ge=0)
    status: Literal["pending", "succeeded", "failed"] = "succeeded"
    reason: str | None = None
    lines: list[ReturnLine] = Field(default_factory=list)
    shipping: Money = Field(default=Decimal("0"), ge=0)
    created_at: datetime | None = None


class Order(_Model):
    """One order as every part of Kefu sees it, whichever marketplace it came from."""

    order_id: str  # the marketplace's own id / number (what customers quote)
    marketplace: Marketplace
    status: OrderStatus
    sale_type: SaleType = "normal"
    currency: str = Field(min_length=3, max_length=3)
    created_at: datetime
    paid_at: datetime | None = None
    updated_at: datetime | None = None
    source_version: int | None = None  # the source's own revision counter, when it has one
    buyer: Buyer = Field(default_factory=Buyer)
    shipping_address: Address | None = None
    address_changed_at: datetime | None = None
    items: list[OrderItem]
    subtotal: Money = Field(ge=0)  # sum of unit_price × quantity
    discount_total: Money = Field(default=Decimal("0"), ge=0)
    shipping_fee: Money = Field(default=Decimal("0"), ge=0)
    shipping_refunded: Money = Field(default=Decimal("0"), ge=0)
    total_paid: Money = Field(ge=0)
    refunded_total: Money = Field(default=Decimal("0"), ge=0)
    payments: list[Payment] = Field(default_factory=list)
    promotions: list[Promotion] = Field(default_factory=list)
    shipments: list[Shipment] = Field(default_factory=list)
    returns: list[ReturnRequest] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)
    fraud_score: float | None = Field(default=None, ge=0, le=1)  # connector-provided, 0 safe … 1 fraud

    def item(self, line_id: str) -> OrderItem | None:
        return next((i for i in self.items if i.line_id == line_id), None)

    def tracking_numbers(self) -> list[str]:
        return [s.tracking_number for s in self.shipments if s.tracking_number]

    def check_consistency(self) -> list[str]:
        """The invariants every connector must keep; returns the broken ones (empty when sound)."""
        problems = []
        if not self.items:
            problems.append("no_items")
        if sum((i.paid for i in self.items), Decimal("0")) + self.shipping_fee != self.total_paid:
            problems.append("items_do_not_add_up")
        for i in self.items:
            if i.refunded_quantity > i.quantity or i.refunded_amount > i.paid:
                problems.append(f"over_refunded:{i.line_id}")
        if len({i.line_id for i in self.items}) != len(self.items):
            problems.append("duplicate_line_id")
        return problems


# --- what the service hands out ----------------------------------------------------------------------

class Freshness(_Model):
    """How current the data is: ``degraded`` means the order system did not answer and this is the last copy."""

    source: Literal["live", "cache", "stale_cache"]  # fetched now / fresh cache / last known copy
    degraded: bool = False
    age_seconds: float = 0.0
    fetched_at: datetime | None = None


class OrderView(_Model):
    """An order as Kefu knows it: our stable id ``ord_…``, the canonical order and how fresh it is."""

    id: str  # ord_…, stable per (tenant, marketplace, order_id)
    connector: str  # "demo_shop" or a connector id (ccn_…)
    version: int  # Kefu's version of this order; If-Match on actions
    order: Order
    freshness: Freshness


class OrderSummary(_Model):
    """One line of a list: enough to pick the order without loading the detail."""

    id: str
    order_id: str
    marketplace: str
    status: str
    currency: str
    total_paid: Money
    created_at: datetime
    item_titles: list[str]
    tracking_numbers: list[str]


class OrderLookup(_Model):
    orders: list[OrderView]
    degraded: bool = False  # at least one source did not answer; results may be incomplete or old


class LocalisedReason(_Model):
    code: str
    zh: str
    en: str


class ReturnEligibility(_Model):
    line_id: str
    kind: Literal["no_reason", "defect"]
    eligible: bool
    reasons: list[LocalisedReason]
    deadline: datetime | None = None
    returnable_quantity: int = 0


class RefundQuoteLine(_Model):
    line_id: str
    sku: str
    quantity: int
    amount: Money


class RefundQuote(_Model):
    currency: str
    lines: list[RefundQuoteLine]
    shipping: Money
    total: Money
    refundable_after: Money  # what would still be refundable after this refund


class PriceProtectionQuote(_Model):
    line_id: str
    eligible: bool
    amount: Money
    current_price: Money | None
    paid_unit_price: Money
    reasons: list[LocalisedReason]
    deadline: datetime | None = None


class RiskFlag(_Model):
    code: str  # address_changed_after_payment, many_refunds, high_value, phone_region_mismatch, fraud_score
    severity: Literal["info", "warning", "high"]
    reason: LocalisedReason


class StuckShipment(_Model):
    tracking_number: str
    carrier: str
    node: str
    since: datetime
    hours: float
    expected_hours: int


class OrderDetail(_Model):
    """An order with everything an agent or the bot needs to decide: eligibility, risk, stuck parcels."""

    view: OrderView
    returns: list[ReturnEligibility]
    risk: list[RiskFlag]
    stuck: list[StuckShipment]
    refundable: Money


# --- requests -------------------------------------------------------------------------------------------

class LineQuantity(BaseModel):
    line_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100000)


class CancelRequest(BaseModel):
    reason: str = Field(default="customer_request", min_length=1, max_length=200)

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "customer_request"}]})


class AddressChangeRequest(BaseModel):
    address: Address

    model_config = ConfigDict(json_schema_extra={"examples": [{"address": {
        "name": "王小明", "phone": "+8613800138000", "country": "CN", "province": "上海市", "city": "上海市",
        "district": "浦东新区", "line1": "世纪大道 100 号", "postcode": "200120"}}]})


class ReturnCreate(BaseModel):
    kind: Literal["return", "exchange"] = "return"
    reason: Literal["no_reason", "defect"] = "no_reason"
    lines: list[LineQuantity] = Field(min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=500)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "kind": "return", "reason": "no_reason", "lines": [{"line_id": "L1", "quantity": 1}]}]})


class RefundCreate(BaseModel):
    """Refund some lines (partial quantities allowed); the amount is computed by the refund rules, or capped
    by ``amount`` when given (it may not exceed the quote)."""

    lines: list[LineQuantity] = Field(min_length=1, max_length=100)
    reason: Literal["no_reason", "defect", "not_received", "price_adjustment", "other"] = "no_reason"
    amount: Decimal | None = Field(default=None, gt=0, max_digits=14, decimal_places=2)
    currency: str | None = Field(default=None, min_length=3, max_length=3)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "lines": [{"line_id": "L1", "quantity": 1}], "reason": "no_reason"}]})


class RefundQuoteRequest(BaseModel):
    lines: list[LineQuantity] = Field(min_length=1, max_length=100)
    reason: Literal["no_reason", "defect", "not_received", "price_adjustment", "other"] = "no_reason"

    model_config = ConfigDict(json_schema_extra={"examples": [{"lines": [{"line_id": "L1", "quantity": 1}]}]})


class PriceProtectionClaim(BaseModel):
    line_id: str = Field(min_length=1, max_length=64)

    model_config = ConfigDict(json_schema_extra={"examples": [{"line_id": "L1"}]})


class ActionResult(_Model):
    """The outcome of one order action (also what an idempotent retry gets back)."""

    id: str  # cact_…
    kind: Literal["cancel", "change_address", "create_return", "request_refund", "claim_price_protection"]
    status: Literal["pending", "succeeded", "failed"]
    order_ref: str  # ord_…
    idempotency_key: str
    amount: Money | None = None
    currency: str | None = None
    external_ref: str | None = None  # refund / return id at the source
    error_code: str | None = None
    order: OrderView | None = None
    created_at: datetime


class ConnectorCreate(BaseModel):
    """A tenant's order system. ``kind`` demo_shop needs no config; rest takes URL templates, auth, mapping."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["demo_shop", "rest"]
    marketplace: str = Field(default="shop", min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    webhook_format: Literal["canonical", "shopify", "woocommerce", "taobao", "mapped"] = "canonical"
    config: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Our ERP", "kind": "rest", "marketplace": "erp", "webhook_format": "mapped",
        "config": {"base_url": "https://erp.example.com", "auth": {"kind": "bearer", "token": "s3cret"},
                   "urls": {"get_order": "/orders/{order_id}", "search": "/orders?{field}={value}"},
                   "mapping": {"order_id": "id", "status": "state", "currency": "currency",
                               "total_paid": "amount_paid"}}}]})


class ConnectorRead(_Model):
    id: str
    name: str
    kind: str
    marketplace: str
    webhook_format: str
    webhook_secret: str | None = None  # only shown to admins
    enabled: bool
    created_at: datetime
    breaker: str = "closed"
