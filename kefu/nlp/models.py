"""ORM tables of the nlp domain: a tenant's custom intents, its training examples, order-number formats
and the version of its trained model (so that every node can tell when its in-memory model is stale)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.core.db import Base


class NluIntent(Base):
    """A custom intent of one tenant (the default taxonomy lives in code, not here)."""

    __tablename__ = "nlu_intents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class NluExample(Base):
    """A training example of a tenant, for one of its custom intents or for a default intent."""

    __tablename__ = "nlu_examples"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    intent: Mapped[str] = mapped_column(String(64))
    intent_id: Mapped[str | None] = mapped_column(ForeignKey("nlu_intents.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(500))
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("tenant_id", "intent", "text"),
        Index("ix_nlu_examples_tenant_id_intent", "tenant_id", "intent"),
        Index("ix_nlu_examples_intent_id", "intent_id"),
    )


class NluOrderPattern(Base):
    """An order-number format of a tenant's shop or marketplace, tried before the defaults."""

    __tablename__ = "nlu_order_patterns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(64))
    regex: Mapped[str] = mapped_column(String(300))
    marketplace: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class NluModel(Base):
    """The trained model of a tenant: bumped on every retrain; nodes with an older one retrain locally."""

    __tablename__ = "nlu_models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), unique=True)
    version: Mapped[int] = mapped_column(default=0)
    # sha256 of the examples and order patterns this version was trained on (see service.training_data_hash).
    data_hash: Mapped[str | None] = mapped_column(String(64))
    # default | ready, or training while a retrain holds the row (claimed at updated_at; see actions.do_retrain).
    status: Mapped[str] = mapped_column(String(16), default="default")
    example_count: Mapped[int] = mapped_column(default=0)
    custom_intents: Mapped[int] = mapped_column(default=0)
    trained_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
