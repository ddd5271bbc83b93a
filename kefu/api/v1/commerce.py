"""REST endpoints of the commerce domain: order lookups and detail, quotes, actions, connectors, rules, webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel

import kefu.integrations.commerce  # noqa: F401  (registers the connector kinds)
from kefu.api.deps import IfMatch, RuntimeDep, Scoped, client_ip, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, decode_cursor, encode_cursor
from kefu.commerce import actions as commerce_actions
from kefu.commerce import service as commerce_service
from kefu.commerce.models import CommerceConnector, CommerceSettings
from kefu.commerce.policies import CommerceRules
from kefu.commerce.schemas import (
    ActionResult,
    AddressChangeRequest,
    CancelRequest,
    ConnectorCreate,
    ConnectorRead,
    OrderDetail,
    OrderLookup,
    OrderView,
    PriceProtectionClaim,
    PriceProtectionQuote,
    RefundCreate,
    RefundQuote,
    RefundQuoteRequest,
    ReturnCreate,
)
from kefu.commerce.sources import SOURCE_KINDS, hub_of
from kefu.core.errors import ValidationFailed
from kefu.integrations.commerce import webhooks as commerce_webhooks
from kefu.integrations.commerce.rest import map_order

router = APIRouter(tags=["commerce"])
Reader = Scoped("orders:read")
Writer = Scoped("orders:write")
Refunder = Scoped("orders:refund")
Admin = Scoped("commerce:admin")
OrderId = Annotated[str, Path(max_length=40, description="Kefu's order id (`ord_…`)")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                               description="Retries with the same key act once")]
ORDER_ERRORS = ("order_not_found", "order_system_unavailable")
ACTION_ERRORS = (*AUTH_ERRORS, *BODY_ERRORS, *ORDER_ERRORS, "version_conflict", "invalid_if_match",
                 "order_action_in_progress", "order_action_refused", "idempotency_in_progress",
                 "idempotency_key_reused", "unknown_order_line")


class OrderPage(BaseModel):
    """Orders found, newest first; ``degraded`` when an order system did not answer (last known data shown)."""

    data: list[OrderView]
    next_cursor: str | None = None
    degraded: bool = False


def _page(found: OrderLookup, limit: int, cursor: str | None) -> OrderPage:
    after = decode_cursor(cursor)
    views = [v for v in found.orders if after is None or v.id < after]
    more = len(views) > limit
    views = views[:limit]
    return OrderPage(data=views, next_cursor=encode_cursor(views[-1].id) if more and views else None,
                     degraded=found.degraded)


@router.get("/api/v1/orders", summary="Look up orders by number, phone, email, tracking number or buyer id",
            response_model=OrderPage, responses=error_responses(*AUTH_ERRORS, "lookup_key_required", "invalid_cursor"))
async def lookup_orders(
    actor: Reader, runtime: RuntimeDep,
    order_number: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    phone: Annotated[str | None, Query(min_length=3, max_length=40)] = None,
    email: Annotated[str | None, Query(min_length=3, max_length=254)] = None,
    tracking_number: Annotated[str | None, Query(min_length=3, max_length=60)] = None,
    buyer_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Limit = 20, cursor: Cursor = None,
) -> OrderPage:
    found = await commerce_service.find_orders(
        runtime=runtime, tenant_id=actor.tenant_id, order_number=order_number, phone=phone, email=email,
        tracking_number=tracking_number, buyer_id=buyer_id, limit=200)
    return _page(found, limit, cursor)


@router.get("/api/v1/contacts/{contact_id}/orders", response_model=OrderPage,
            summary="A contact's orders across every marketplace (through their identities)",
            responses=error_responses(*AUTH_ERRORS, "contact_not_found", "invalid_cursor"))
async def contact_orders(contact_id: Annotated[str, Path(max_length=40)], actor: Reader, runtime: RuntimeDep,
                         limit: Limit = 20, cursor: Cursor = None) -> OrderPage:
    found = await commerce_service.orders_of_contact(runtime=runtime, tenant_id=actor.tenant_id,
                                                     contact_id=contact_id, limit=200)
    return _page(found, limit, cursor)


@router.get("/api/v1/orders/{order_id}", response_model=OrderDetail,
            summary="An order with return eligibility per line, risk flags and stuck parcels (ETag = version)",
            responses=error_responses(*AUTH_ERRORS, *ORDER_ERRORS))
async def get_order(order_id: OrderId, actor: Reader, runtime: RuntimeDep, response: Response) -> OrderDetail:
    detail = await commerce_service.order_detail(runtime=runtime, tenant_id=actor.tenant_id, order_ref=order_id)
    set_etag(response, detail.view.version)
    return detail


@router.post("/api/v1/orders/{order_id}/refund-quotes", response_model=RefundQuote,
             summary="What refunding these lines would return (nothing changes)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, *ORDER_ERRORS, "unknown_order_line",
                                       "refund_exceeds_paid", "order_not_refundable"))
async def quote_refund(order_id: OrderId, body: RefundQuoteRequest, actor: Reader, runtime: RuntimeDep) -> RefundQuote:
    return await commerce_service.refund_quote(runtime=runtime, tenant_id=actor.tenant_id, order_ref=order_id,
                                               lines=body.lines, reason=body.reason)


@router.post("/api/v1/orders/{order_id}/price-protection-quotes", response_model=PriceProtectionQuote,
             summary="价保: what a price protection claim for this line would return (nothing changes)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, *ORDER_ERRORS, "unknown_order_line"))
async def quote_price_protection(order_id: OrderId, body: PriceProtectionClaim, actor: Reader,
                                 runtime: RuntimeDep) -> PriceProtectionQuote:
    return await commerce_service.price_protection_quote(runtime=runtime, tenant_id=actor.tenant_id,
                                                         order_ref=order_id, line_id=body.line_id)


@router.post("/api/v1/orders/{order_id}/cancel", response_model=ActionResult,
             summary="Cancel an order that has not shipped (Idempotency-Key, If-Match; audited)",
             responses=error_responses(*ACTION_ERRORS, "order_already_shipped", "order_closed"))
async def cancel_order(order_id: OrderId, body: CancelRequest, actor: Writer, runtime: RuntimeDep, request: Request,
                       expected: IfMatch, key: IdempotencyKey = None) -> ActionResult:
    return await commerce_actions.do_cancel_order(runtime, tenant_id=actor.tenant_id, actor=actor, order_ref=order_id,
                                                  data=body, idempotency_key=key, expected_version=expected,
                                                  ip=client_ip(request))


@router.post("/api/v1/orders/{order_id}/change-address", response_model=ActionResult,
             summary="Change the shipping address before shipping (Idempotency-Key, If-Match; audited)",
             responses=error_responses(*ACTION_ERRORS, "order_already_shipped", "order_closed"))
async def change_address(order_id: OrderId, body: AddressChangeRequest, actor: Writer, runtime: RuntimeDep,
                         request: Request, expected: IfMatch, key: IdempotencyKey = None) -> ActionResult:
    return await commerce_actions.do_change_address(runtime, tenant_id=actor.tenant_id, actor=actor,
                                                    order_ref=order_id, data=body, idempotency_key=key,
                                                    expected_version=expected, ip=client_ip(request))


@router.post("/api/v1/orders/{order_id}/returns", response_model=ActionResult,
             summary="Open a return or exchange for eligible lines (Idempotency-Key, If-Match; audited)",
             responses=error_responses(*ACTION_ERRORS, "return_not_eligible"))
async def create_return(order_id: OrderId, body: ReturnCreate, actor: Writer, runtime: RuntimeDep, request: Request,
                        expected: IfMatch, key: IdempotencyKey = None) -> ActionResult:
    return await commerce_actions.do_create_return(runtime, tenant_id=actor.tenant_id, actor=actor, order_ref=order_id,
                                                   data=body, idempotency_key=key, expected_version=expected,
                                                   ip=client_ip(request))


@router.post("/api/v1/orders/{order_id}/refunds", response_model=ActionResult,
             summary="Refund lines by the refund rules, never above what was paid (supervisors; audited)",
             responses=error_responses(*ACTION_ERRORS, "refund_exceeds_paid", "order_not_refundable",
                                       "currency_mismatch"))
async def request_refund(order_id: OrderId, body: RefundCreate, actor: Refunder, runtime: RuntimeDep,
                         request: Request, expected: IfMatch, key: IdempotencyKey = None) -> ActionResult:
    return await commerce_actions.do_request_refund(runtime, tenant_id=actor.tenant_id, actor=actor,
                                                    order_ref=order_id, data=body, idempotency_key=key,
                                                    expected_version=expected, ip=client_ip(request))


@router.post("/api/v1/orders/{order_id}/price-protection-claims", response_model=ActionResult,
             summary="价保: refund the difference to today's lower price, once per line (supervisors; audited)",
             responses=error_responses(*ACTION_ERRORS, "price_protection_not_eligible"))
async def claim_price_protection(order_id: OrderId, body: PriceProtectionClaim, actor: Refunder,
                                 runtime: RuntimeDep, request: Request, expected: IfMatch,
                                 key: IdempotencyKey = None) -> ActionResult:
    return await commerce_actions.do_claim_price_protection(runtime, tenant_id=actor.tenant_id, actor=actor,
                                                            order_ref=order_id, data=body, idempotency_key=key,
                                                            expected_version=expected, ip=client_ip(request))


# --- connectors, rules, webhooks ---------------------------------------------------------------------------

def _connector_read(row: CommerceConnector, runtime: RuntimeDep) -> ConnectorRead:
    entry = hub_of(runtime).sources.get((row.tenant_id, row.id))
    return ConnectorRead(id=row.id, name=row.name, kind=row.kind, marketplace=row.marketplace,
                         webhook_format=row.webhook_format, webhook_secret=row.webhook_secret, enabled=row.enabled,
                         created_at=row.created_at, breaker=entry.breaker.state if entry else "closed")


@router.post("/api/v1/commerce/connectors", status_code=201, response_model=ConnectorRead,
             summary="Connect an order system (demo shop or generic REST); answers its webhook secret",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "invalid_connector_config"))
async def create_connector(body: ConnectorCreate, actor: Admin, runtime: RuntimeDep, request: Request) -> ConnectorRead:
    factory = SOURCE_KINDS.get(body.kind)
    if factory is None:
        raise ValidationFailed("invalid_connector_config", details={"field": "kind"})
    factory(actor.tenant_id, body.config)  # refuses an unusable configuration before it is stored
    uow = runtime.unit_of_work()
    try:
        row = await commerce_actions.do_create_connector(uow, tenant_id=actor.tenant_id, data=body, actor=actor,
                                                         ip=client_ip(request))
        await uow.commit()
    finally:
        await uow.session.close()
    hub_of(runtime).forget_tenant_connectors(actor.tenant_id)
    return _connector_read(row, runtime)


@router.get("/api/v1/commerce/connectors", response_model=list[ConnectorRead],
            summary="The tenant's order systems (none: the built-in demo shop answers)",
            responses=error_responses(*AUTH_ERRORS))
async def list_connectors(actor: Admin, runtime: RuntimeDep) -> list[ConnectorRead]:
    async with runtime.sessionmaker() as session:
        rows = await commerce_service.list_connectors(session=session, tenant_id=actor.tenant_id)
    return [_connector_read(r, runtime) for r in rows]


@router.get("/api/v1/commerce/connectors/{connector_id}", response_model=ConnectorRead,
            summary="One order system with its circuit breaker state",
            responses=error_responses(*AUTH_ERRORS, "connector_not_found"))
async def get_connector(connector_id: Annotated[str, Path(max_length=40)], actor: Admin,
                        runtime: RuntimeDep) -> ConnectorRead:
    async with runtime.sessionmaker() as session:
        row = await commerce_service.access_connector(session=session, tenant_id=actor.tenant_id,
                                                      connector_id=connector_id)
    return _connector_read(row, runtime)


@router.post("/api/v1/commerce/connectors/{connector_id}/reconcile", response_model=dict[str, int],
             summary="Compare the stored copies of this connector's orders with the source now and repair drift",
             responses=error_responses(*AUTH_ERRORS, "connector_not_found"))
async def reconcile_connector(connector_id: Annotated[str, Path(max_length=40)], actor: Admin,
                              runtime: RuntimeDep) -> dict[str, int]:
    from kefu.commerce import workers as commerce_workers

    async with runtime.sessionmaker() as session:
        row = await commerce_service.access_connector(session=session, tenant_id=actor.tenant_id,
                                                      connector_id=connector_id)
    return await commerce_workers.reconcile(runtime, tenant_id=actor.tenant_id, connector=row.id)


@router.get("/api/v1/commerce/rules", response_model=CommerceRules,
            summary="The tenant's after-sales rules (ETag = version, 0 while the defaults apply)",
            responses=error_responses(*AUTH_ERRORS))
async def get_rules(actor: Reader, runtime: RuntimeDep, response: Response) -> CommerceRules:
    async with runtime.sessionmaker() as session:
        row = await session.get(CommerceSettings, actor.tenant_id)
        rules = await commerce_service.rules_of(session=session, tenant_id=actor.tenant_id)
    set_etag(response, row.version if row else 0)
    return rules


class RulesUpdate(CommerceRules):
    model_config = {"json_schema_extra": {"examples": [{"no_reason_return_days": 7, "defect_return_days": 15,
                                                        "excluded_categories": ["fresh_food", "customised"],
                                                        "price_protection_days": 30}]}}


@router.put("/api/v1/commerce/rules", response_model=CommerceRules,
            summary="Replace the after-sales rules (If-Match with the ETag; audited)",
            responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "version_conflict", "invalid_if_match"))
async def put_rules(body: RulesUpdate, actor: Admin, runtime: RuntimeDep, request: Request, expected: IfMatch,
                    response: Response) -> CommerceRules:
    uow = runtime.unit_of_work()
    try:
        row = await commerce_actions.do_update_rules(uow, tenant_id=actor.tenant_id,
                                                     rules=CommerceRules.model_validate(body.model_dump()),
                                                     actor=actor, expected_version=expected, ip=client_ip(request))
        await uow.commit()
    finally:
        await uow.session.close()
    set_etag(response, row.version)
    return CommerceRules.model_validate(row.rules)


class WebhookAck(BaseModel):
    id: str
    event_id: str
    outcome: str
    duplicate: bool
    order_ref: str | None


@router.post("/api/v1/commerce/webhooks", response_model=WebhookAck,
             summary="Order / shipment webhook from an order system (Kefu-Signature; stored before acknowledged)",
             openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
             responses=error_responses(*BODY_ERRORS, "invalid_webhook_signature", "invalid_webhook_payload",
                                       "invalid_order_payload", "webhook_in_progress"))
async def receive_webhook(request: Request, runtime: RuntimeDep,
                          connector_id: Annotated[str, Query(max_length=40)],
                          signature: Annotated[str | None, Header(alias="Kefu-Signature", max_length=500)] = None,
                          ) -> WebhookAck:
    body = await request.body()
    async with runtime.sessionmaker() as session:
        connector = await session.get(CommerceConnector, connector_id)
    # An unknown connector answers exactly like a bad signature: callers learn nothing about ids.
    commerce_webhooks.verify(connector.webhook_secret if connector else None, signature, body)
    if connector is None:  # verify() already refused it; said again so no check depends on assert
        raise commerce_webhooks.InvalidSignature()
    mapper = None
    if connector.webhook_format == "mapped":
        config = connector.config or {}

        def mapper(raw):  # type: ignore[no-untyped-def]
            return map_order(raw, config.get("mapping") or {}, marketplace=connector.marketplace,
                             status_map=config.get("status_map") or {})
    event = commerce_webhooks.parse(body, fmt=connector.webhook_format, mapper=mapper)
    uow = runtime.unit_of_work()
    try:
        stored, created = await commerce_actions.do_receive_webhook(
            uow, connector=connector, event_id=event.event_id, type=event.type, payload=event.payload,
            order=event.order)
        await uow.commit()
    finally:
        await uow.session.close()
    if created and stored.order_ref:
        commerce_service.forget_order(runtime=runtime, tenant_id=connector.tenant_id, order_ref=stored.order_ref)
    return WebhookAck(id=stored.id, event_id=stored.event_id, outcome=stored.outcome, duplicate=not created,
                      order_ref=stored.order_ref)
