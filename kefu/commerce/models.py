"""ORM tables of the commerce domain.

``commerce_orders`` is the last known copy of every order Kefu has seen (the degraded-mode answer and the
reconciliation baseline), ``commerce_order_keys`` indexes it by phone / email / tracking number / buyer id,
``commerce_actions`` records every action with its idempotency key, ``commerce_webhook_events`` stores
webhooks before they are acknowledged, ``commerce_connectors`` holds each tenant's order systems.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class CommerceConnector(Base):
    __tablename__ = "commerce_connectors"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # demo_shop | rest
    marketplace: Mapped[str] = mapped_column(String(40))
    webhook_format: Mapped[str] = mapped_column(String(20))
    webhook_secret: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class CommerceOrder(Base):
    __tablename__ = "commerce_orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ord_…
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    connector: Mapped[str] = mapped_column(String(40))  # demo_shop or ccn_…
    marketplace: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30))
    buyer_id: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column()
    data_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)
    source_version: Mapped[int | None] = mapped_column()
    source_updated_at: Mapped[datetime | None]
    ordered_at: Mapped[datetime]
    fetched_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # "tracking@since" of the last stuck-shipment event, so one stuck parcel is announced once.
    stuck_alert: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("tenant_id", "connector", "order_id"),
                      Index("ix_commerce_orders_status", "status"),
                      Index("ix_commerce_orders_tenant_buyer", "tenant_id", "buyer_id"))


class CommerceOrderKey(Base):
    __tablename__ = "commerce_order_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(20))  # order_id | phone | email | tracking_number | buyer_id
    value: Mapped[str] = mapped_column(String(254))
    order_ref: Mapped[str] = mapped_column(ForeignKey("commerce_orders.id", ondelete="CASCADE"), index=True)

    __table_args__ = (UniqueConstraint("tenant_id", "kind", "value", "order_ref"),)


class CommerceAction(Base):
    __tablename__ = "commerce_actions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # cact_…
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    order_ref: Mapped[str] = mapped_column(ForeignKey("commerce_orders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # pending | succeeded | failed
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    amount: Mapped[str | None] = mapped_column(String(40))  # decimal string; exact on both databases
    currency: Mapped[str | None] = mapped_column(String(3))
    buyer_id: Mapped[str | None] = mapped_column(String(200))
    external_ref: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(60))
    actor_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    # When the action was last claimed (set ``pending``). A pending action claimed longer ago than the
    # connector call timeout plus a margin was abandoned (crash, deploy) and is run again under its key.
    claimed_at: Mapped[datetime | None]
    # What the first claim decided (amounts as decimal strings). A run again under the same key executes this
    # plan unchanged, since the source may already have done it and the order may no longer pass the rules.
    plan: Mapped[dict[str, Any] | None] = mapped_column()
    finished_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),
                      Index("ix_commerce_actions_status_claimed_at", "status", "claimed_at"),
                      Index("ix_commerce_actions_tenant_buyer", "tenant_id", "buyer_id"))


class CommerceWebhookEvent(Base):
    __tablename__ = "commerce_webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # cwh_…
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    connector_id: Mapped[str] = mapped_column(ForeignKey("commerce_connectors.id"))
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(20))  # applied | stale | unknown_order
    order_ref: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("connector_id", "event_id"),)


class CommerceSettings(Base):
    """A tenant's after-sales rules (``kefu.commerce.policies.CommerceRules``); absent means the defaults."""

    __tablename__ = "commerce_settings"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime]
