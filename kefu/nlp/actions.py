"""Writes of the nlp domain: custom intents, examples, order patterns and retraining a tenant's model.

Retraining happens in a worker thread inside the request (a few seconds); the new pipeline is returned
to the caller, which installs it in this process only after the commit (so a rolled-back retrain never
serves), and other nodes pick the new version up through ``service.ensure_tenant_pipeline``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, ValidationFailed
from kefu.core.ids import new_id
from kefu.events.uow import UnitOfWork
from kefu.nlp import policies
from kefu.nlp import service as nlp_service
from kefu.nlp.models import NluExample, NluIntent, NluModel, NluOrderPattern
from kefu.nlp.pipeline import NluPipeline
from kefu.nlp.schemas import IntentCreate, OrderPatternCreate

INTENT_CREATED = "nlu.intent_created"
INTENT_DELETED = "nlu.intent_deleted"
EXAMPLES_ADDED = "nlu.examples_added"
MODEL_RETRAINED = "nlu.model_retrained"
# How long a first-ever retrain waits for another one's uncommitted model row before answering 409.
FIRST_ROW_LOCK_TIMEOUT_MS = 500


async def do_create_intent(uow: UnitOfWork, *, tenant_id: str, data: IntentCreate) -> NluIntent:
    """Create a custom intent of the tenant with its first examples."""
    if policies.is_reserved_intent(data.name):
        raise ValidationFailed("nlu_reserved_intent", name=data.name)
    if await nlp_service.custom_intent_by_name(session=uow.session, tenant_id=tenant_id, name=data.name):
        raise Conflict("nlu_intent_exists", name=data.name)
    now = utcnow()
    intent = NluIntent(id=new_id("nlint"), tenant_id=tenant_id, name=data.name, description=data.description,
                       created_at=now, updated_at=now)
    uow.session.add(intent)
    await uow.session.flush()
    await do_add_examples(uow, tenant_id=tenant_id, intent=data.name, texts=data.examples, intent_row=intent)
    uow.emit(INTENT_CREATED, tenant_id=tenant_id, data={"id": intent.id, "name": intent.name})
    return intent


async def do_delete_intent(uow: UnitOfWork, *, tenant_id: str, intent_id: str) -> None:
    """Delete a custom intent and its examples; the model keeps it until the next retrain."""
    intent = await nlp_service.access_intent(session=uow.session, tenant_id=tenant_id, intent_id=intent_id)
    await uow.session.execute(delete(NluExample).where(NluExample.tenant_id == tenant_id,
                                                       NluExample.intent == intent.name))
    await uow.session.delete(intent)
    uow.emit(INTENT_DELETED, tenant_id=tenant_id, data={"id": intent.id, "name": intent.name})


async def do_add_examples(uow: UnitOfWork, *, tenant_id: str, intent: str, texts: Sequence[str],
                          intent_row: NluIntent | None = None) -> list[NluExample]:
    """Add training examples to a default or custom intent; duplicates and blank texts are skipped."""
    if intent_row is None and not policies.is_reserved_intent(intent):
        intent_row = await nlp_service.custom_intent_by_name(session=uow.session, tenant_id=tenant_id, name=intent)
        if intent_row is None:
            raise ValidationFailed("nlu_unknown_intent", name=intent)
    wanted: dict[str, None] = {}
    for raw in texts:
        text = policies.normalise_example(raw)
        if text is not None:
            wanted.setdefault(text, None)
    if not wanted:
        return []
    existing = set(await uow.session.scalars(select(NluExample.text).where(
        NluExample.tenant_id == tenant_id, NluExample.intent == intent, NluExample.text.in_(list(wanted)))))
    total = int(await uow.session.scalar(select(func.count()).select_from(NluExample)
                                         .where(NluExample.tenant_id == tenant_id)) or 0)
    fresh = [t for t in wanted if t not in existing]
    if total + len(fresh) > policies.MAX_EXAMPLES_PER_TENANT:
        raise ValidationFailed("nlu_too_many_examples", limit=policies.MAX_EXAMPLES_PER_TENANT)
    now = utcnow()
    rows = [NluExample(id=new_id("nlex"), tenant_id=tenant_id, intent=intent,
                       intent_id=intent_row.id if intent_row is not None else None, text=t,
                       language=policies.example_language(t), created_at=now) for t in fresh]
    uow.session.add_all(rows)
    await uow.session.flush()
    if rows:
        uow.emit(EXAMPLES_ADDED, tenant_id=tenant_id, data={"intent": intent, "count": len(rows)})
    return rows


async def do_delete_example(uow: UnitOfWork, *, tenant_id: str, example_id: str) -> None:
    example = await nlp_service.access_example(session=uow.session, tenant_id=tenant_id, example_id=example_id)
    await uow.session.delete(example)


async def do_add_order_pattern(uow: UnitOfWork, *, tenant_id: str, data: OrderPatternCreate) -> NluOrderPattern:
    """Register an order-number format of the tenant (checked for validity and catastrophic backtracking)."""
    problem = policies.order_pattern_problem(data.regex)
    if problem is not None:
        # The web layer turns the code (and feature) into the sentence of the request's language.
        raise ValidationFailed("nlu_invalid_pattern", details={"problem": problem.code, **problem.params},
                               problem=problem.code)
    taken = await uow.session.scalar(select(NluOrderPattern.id).where(
        NluOrderPattern.tenant_id == tenant_id, NluOrderPattern.name == data.name))
    if taken is not None:
        raise Conflict("nlu_pattern_exists", name=data.name)
    pattern = NluOrderPattern(id=new_id("nlpat"), tenant_id=tenant_id, name=data.name, regex=data.regex,
                              marketplace=data.marketplace, created_at=utcnow())
    uow.session.add(pattern)
    await uow.session.flush()
    return pattern


async def do_delete_order_pattern(uow: UnitOfWork, *, tenant_id: str, pattern_id: str) -> None:
    pattern = await nlp_service.access_order_pattern(session=uow.session, tenant_id=tenant_id,
                                                     pattern_id=pattern_id)
    await uow.session.delete(pattern)


async def _lock_model(session: AsyncSession, *, tenant_id: str) -> NluModel:
    """The tenant's model row, created on first use, locked for the rest of this transaction.

    PostgreSQL: ``FOR UPDATE NOWAIT``, so a second retrain of the same tenant is refused at once instead of
    holding a connection for the seconds a training takes. SQLite has no row locks, but ``BEGIN IMMEDIATE``
    (``core.db``) already lets one writer in at a time, so a second retrain waits and then trains next.
    """
    query = select(NluModel).where(NluModel.tenant_id == tenant_id).with_for_update(nowait=True)
    try:
        model = await session.scalar(query)
        if model is None:
            now = utcnow()
            postgres = session.get_bind().dialect.name == "postgresql"
            try:
                # A savepoint, so losing the race for the first row (unique tenant_id) keeps the transaction.
                async with session.begin_nested():
                    if postgres:
                        # An insert that collides with another retrain's uncommitted first row waits for that
                        # whole training; give up soon instead (55P03, like NOWAIT). Reverted with the savepoint.
                        await session.execute(text(f"SET LOCAL lock_timeout = '{FIRST_ROW_LOCK_TIMEOUT_MS}ms'"))
                    session.add(NluModel(id=new_id("nlmod"), tenant_id=tenant_id, version=0, status="default",
                                         example_count=0, custom_intents=0, created_at=now, updated_at=now))
                    await session.flush()
                    if postgres:
                        await session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
            except IntegrityError:
                pass
            model = await session.scalar(query)
    except DBAPIError as exc:
        if _lock_not_available(exc):
            raise Conflict("nlu_training_in_progress") from None
        raise
    assert model is not None
    return model


def _lock_not_available(exc: DBAPIError) -> bool:
    # 55P03 lock_not_available: another transaction holds the row (asyncpg names it sqlstate).
    return getattr(exc.orig, "sqlstate", None) == "55P03" or getattr(exc.orig, "pgcode", None) == "55P03"


async def do_retrain(uow: UnitOfWork, *, tenant_id: str) -> tuple[NluModel, NluPipeline]:
    """Train the tenant's model (defaults + its examples + its order patterns) and bump its version.

    The model row is locked before the training data is read, so each version is trained on exactly one
    set of data, and the version is bumped in SQL. The data's hash is stored with the version: a node reloads
    when the stored version is newer or the hash differs from the one it loaded. Raises ``Conflict``
    (``nlu_training_in_progress``) when another retrain of the tenant holds the lock (PostgreSQL).

    Returns the row and the trained pipeline; install the pipeline with ``registry.install`` after commit.
    """
    session = uow.session
    model = await _lock_model(session, tenant_id=tenant_id)
    version = int(await session.scalar(update(NluModel).where(NluModel.id == model.id)
                                       .values(version=NluModel.version + 1).returning(NluModel.version)))
    examples, patterns = await nlp_service.training_data(session=session, tenant_id=tenant_id)
    customs = int(await session.scalar(select(func.count()).select_from(NluIntent)
                                       .where(NluIntent.tenant_id == tenant_id)) or 0)
    data_hash = nlp_service.training_data_hash(examples=examples, patterns=patterns)
    pipeline = await asyncio.to_thread(nlp_service.build_pipeline, examples=examples, patterns=patterns,
                                       version=version)
    now = utcnow()
    model.version = version
    model.data_hash = data_hash
    model.status = "ready"
    model.example_count = len(examples)
    model.custom_intents = customs
    model.trained_at = now
    model.updated_at = now
    await session.flush()
    uow.emit(MODEL_RETRAINED, tenant_id=tenant_id,
             data={"version": version, "example_count": len(examples), "data_hash": data_hash})
    return model, pipeline
