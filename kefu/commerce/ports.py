"""What the commerce domain needs from an order system; connectors in ``kefu.integrations.commerce`` implement it.

Every action takes an idempotency key: the same key twice must perform the action once and answer the same,
so Kefu can retry after a timeout without refunding twice. Errors a connector raises:

* ``SourceUnavailable`` — the system is down, slow or answered garbage (counts against the circuit breaker);
* ``kefu.core.errors.DomainError`` subclasses — the system refused the request (order not found, not allowed);
  those are answers, not outages.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from kefu.commerce.schemas import Address, Order, ReturnLine
from kefu.core.errors import DomainError

SearchField = Literal["order_id", "phone", "email", "tracking_number", "buyer_id"]


class SourceUnavailable(Exception):
    """The order system could not be reached or gave an unusable answer."""


class ActionOutcome:
    """What the source answers to an action: the order as it is now and the source's reference."""

    __slots__ = ("order", "external_ref")

    def __init__(self, order: Order, external_ref: str | None = None) -> None:
        self.order = order
        self.external_ref = external_ref


@runtime_checkable
class OrderSource(Protocol):
    """One order system (a shop's ERP, a marketplace account, the built-in demo shop)."""

    marketplace: str

    async def get_order(self, order_id: str) -> Order | None:
        """The order by the source's own id / number, or None if it has no such order."""

    async def search(self, field: SearchField, value: str, *, limit: int = 50) -> list[Order]:
        """Orders whose ``field`` equals ``value`` (phone / email normalised by the caller), newest first."""

    async def current_price(self, sku: str) -> Decimal | None:
        """The SKU's current price after promotions (for price protection), None if unknown."""

    async def cancel(self, order_id: str, *, reason: str, idempotency_key: str) -> ActionOutcome: ...

    async def change_address(self, order_id: str, *, address: Address, idempotency_key: str) -> ActionOutcome: ...

    async def create_return(self, order_id: str, *, kind: str, reason: str, lines: list[ReturnLine],
                            idempotency_key: str) -> ActionOutcome: ...

    async def request_refund(self, order_id: str, *, amount: Decimal, shipping: Decimal, lines: list[ReturnLine],
                             reason: str, idempotency_key: str) -> ActionOutcome: ...

    async def claim_price_protection(self, order_id: str, *, line_id: str, amount: Decimal,
                                     idempotency_key: str) -> ActionOutcome: ...


class SourceDown(DomainError):
    """The order system does not answer and the request needs current data (actions never act on a copy)."""

    code = "order_system_unavailable"
    status = 503
