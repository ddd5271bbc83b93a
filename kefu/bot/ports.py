"""What the bot needs from other systems, as small Protocols with plain result types.

The dialogue engine only sees these shapes, so a change in the order system, the routing engine or the
knowledge base touches one adapter (``kefu/bot/adapters.py``), not the flows. Tests and the simulation use
the real adapters over the demo shop; nothing here is a mock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from kefu.nlp.understanding import Understanding


class OrderSystemDown(Exception):
    """The order system failed or timed out; the bot must say so and hand off, never guess."""


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str = "CNY"

    def __str__(self) -> str:
        symbol = {"CNY": "¥", "USD": "$", "EUR": "€"}.get(self.currency)
        return f"{symbol}{self.amount:.2f}" if symbol else f"{self.amount:.2f} {self.currency}"


@dataclass(frozen=True, slots=True)
class OrderLine:
    title: str
    quantity: int = 1
    sku: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class OrderBrief:
    """An order as the bot talks about it."""

    id: str
    number: str  # what the customer sees and types
    status: str  # pending_payment | paid | shipped | delivered | completed | cancelled | refunded ...
    placed_at: datetime | None
    total: Money | None
    lines: tuple[OrderLine, ...] = ()
    category: str | None = None
    promised_ship_by: datetime | None = None
    has_refund: bool = False
    shipped: bool = False
    in_transit: bool = False  # a parcel is on its way (not yet delivered)

    @property
    def open_for_changes(self) -> bool:
        """Paid but not shipped: can still be cancelled, re-addressed, chased."""
        return self.status in ("unpaid", "paid", "pre_sale") and not self.shipped

    @property
    def headline(self) -> str:
        first = self.lines[0].title if self.lines else ""
        more = f" +{len(self.lines) - 1}" if len(self.lines) > 1 else ""
        return f"{self.number} {first}{more}".strip()


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    at: datetime | None
    description: str
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Tracking:
    carrier: str | None
    tracking_number: str | None
    status: str  # not_shipped | in_transit | out_for_delivery | delivered | exception
    events: tuple[TrackingEvent, ...] = ()
    estimated_delivery: date | datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer of an order-system call the bot reports: ``ok`` and a code the flow's templates know.

    ``params`` fill the template (already formatted strings); ``data`` is kept for the agent's summary.
    """

    ok: bool
    code: str
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


class OrderDesk(Protocol):
    """The commerce calls the flows make, per tenant and customer."""

    async def customer_orders(self, *, tenant_id: str, contact_id: str, limit: int = 10) -> list[OrderBrief]:
        """The contact's orders in the shop (through their identities), newest first; raises OrderSystemDown."""

    async def order(self, *, tenant_id: str, number: str) -> OrderBrief | None:
        """One order by the number the customer typed or Kefu's id; None when unknown; raises OrderSystemDown."""

    async def perform(self, *, tenant_id: str, skill: str, order: OrderBrief | None, slots: dict[str, Any],
                      language: str, idempotency_key: str, contact_id: str, conversation_id: str) -> Outcome:
        """Run one named skill (track_order, cancel_order, ...) and describe the result."""


@dataclass(frozen=True, slots=True)
class QueuePlacement:
    """Where routing put the conversation and how long the customer should expect to wait."""

    task_id: str | None
    queue_name: str | None
    expected_wait_seconds: int | None


class HandoffDesk(Protocol):
    async def enqueue(self, uow: Any, *, tenant_id: str, conversation_id: str, attributes: dict[str, Any],
                      summary: dict[str, Any], priority: int) -> QueuePlacement:
        """Hand a conversation to routing within the caller's unit of work."""


@dataclass(frozen=True, slots=True)
class KnowledgeChoice:
    id: str
    question: str


@dataclass(frozen=True, slots=True)
class KnowledgeAnswer:
    """What the knowledge base made of a question: ``answer`` (``text`` is the plain-text answer of ``entry_id``),
    ``choices`` (close entries to offer) or ``handoff`` (nothing good enough). ``answer_id`` names the recorded
    question, for the customer's feedback and a later handoff."""

    decision: str  # answer | choices | handoff
    text: str = ""
    answer_id: str | None = None
    entry_id: str | None = None
    score: float = 0.0
    choices: tuple[KnowledgeChoice, ...] = ()


class KnowledgeDesk(Protocol):
    async def answer(self, *, tenant_id: str, question: str, language: str, channel: str | None,
                     conversation_id: str, message_id: str) -> KnowledgeAnswer | None:
        """Ask the knowledge base and record the question (None when it could not be asked at all)."""

    async def choose(self, *, tenant_id: str, answer_id: str, entry_id: str) -> KnowledgeAnswer | None:
        """The customer picked one of the offered entries: its answer (recorded as the answer given)."""

    async def record(self, uow: Any, *, tenant_id: str, answer_id: str, helpful: bool | None = None,
                     handed_off: bool = False) -> None:
        """Within the caller's unit of work: the customer's verdict on an answer, or a handoff after it."""


class Understander(Protocol):
    async def analyse(self, text: str, *, tenant_id: str | None = None) -> Understanding:
        """Language, intent, entities, emotion and sentiment of one customer message (off the event loop)."""
