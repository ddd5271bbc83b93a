"""Writes of the nlp domain: custom intents, examples, order patterns and retraining a tenant's model.

Retraining claims the model, trains in a worker thread with no transaction open (seconds), then stores the
version (``do_retrain``); the new pipeline is returned to the caller, which installs it in this process
only after that commit (so a retrain that did not commit never serves), and other nodes pick the new
version up through ``service.ensure_tenant_pipeline``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, case, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, ValidationFailed
from kefu.core.ids import new_id
from kefu.events.uow import UnitOfWork
from kefu.nlp import policies
from kefu.nlp import service as nlp_service
from kefu.nlp.entities import OrderPattern
from kefu.nlp.models import NluExample, NluIntent, NluModel, NluOrderPattern
from kefu.nlp.pipeline import NluPipeline
from kefu.nlp.schemas import IntentCreate, OrderPatternCreate

INTENT_CREATED = "nlu.intent_created"
INTENT_DELETED = "nlu.intent_deleted"
EXAMPLES_ADDED = "nlu.examples_added"
MODEL_RETRAINED = "nlu.model_retrained"
# How long a first-ever retrain waits for another one's uncommitted model row before answering 409.
FIRST_ROW_LOCK_TIMEOUT_MS = 500
T = TypeVar("T")
log = logging.getLogger("kefu.nlp")


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
    """The tenant's model row, created on first use, locked for the rest of this (short) claim transaction.

    PostgreSQL: ``FOR UPDATE NOWAIT``, so two claims of the same tenant at the same moment do not queue: the
    second is refused at once. SQLite has no row locks; ``BEGIN IMMEDIATE`` (``core.db``) lets one claim in at
    a time, and the second then finds the first one's claim.
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
                        # An insert that collides with another claim's uncommitted first row waits for that
                        # transaction; give up soon instead (55P03, like NOWAIT). Reverted with the savepoint.
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


@dataclass(frozen=True)
class RetrainClaim:
    """A retrain's hold on a tenant's model and the data it trains on, as read in the claim's transaction."""

    tenant_id: str
    model_id: str
    version: int  # the stored version when claimed; this retrain stores version + 1
    claimed_at: datetime  # written to ``updated_at``: the finish and the release only act while it is still there
    examples: list[tuple[str, str]]
    patterns: list[OrderPattern]
    custom_intents: int
    data_hash: str


def _still_claimed(claim: RetrainClaim) -> ColumnElement[bool]:
    """The model row is still as this claim left it (no later retrain took over an expired claim)."""
    return and_(NluModel.id == claim.model_id, NluModel.status == "training", NluModel.version == claim.version,
                NluModel.updated_at == claim.claimed_at)


async def claim_retrain(uow: UnitOfWork, *, tenant_id: str, now: datetime | None = None) -> RetrainClaim:
    """Claim the tenant's model for one retrain and read the data that retrain trains on.

    Commit it at once: the claim (status ``training``, claimed at ``now``) is what keeps a second retrain out
    while this one trains with no transaction open. Raises ``Conflict`` (``nlu_training_in_progress``) when
    another retrain's claim is younger than ``service.TRAINING_LEASE``; an older one was left by a retrain
    that will never finish, and is taken over.
    """
    session = uow.session
    now = now or utcnow()
    model = await _lock_model(session, tenant_id=tenant_id)
    if nlp_service.training_claimed(model, now=now):
        raise Conflict("nlu_training_in_progress")
    examples, patterns = await nlp_service.training_data(session=session, tenant_id=tenant_id)
    customs = int(await session.scalar(select(func.count()).select_from(NluIntent)
                                       .where(NluIntent.tenant_id == tenant_id)) or 0)
    model.status = "training"
    model.updated_at = now
    await session.flush()
    return RetrainClaim(tenant_id=tenant_id, model_id=model.id, version=model.version, claimed_at=now,
                        examples=examples, patterns=patterns, custom_intents=customs,
                        data_hash=nlp_service.training_data_hash(examples=examples, patterns=patterns))


def train_claimed(claim: RetrainClaim) -> NluPipeline:
    """Train the pipeline a claim will store (CPU work: run it in a thread, with no transaction open)."""
    return nlp_service.build_pipeline(examples=claim.examples, patterns=claim.patterns, version=claim.version + 1)


async def finish_retrain(uow: UnitOfWork, claim: RetrainClaim) -> NluModel:
    """Store the version a claim trained, if the claim still holds (compare-and-set), and emit the event.

    Raises ``Conflict`` (``nlu_training_in_progress``) when the claim was taken over after its lease ran out:
    this result is then not stored, and the version goes to the retrain that took over.
    """
    now = utcnow()
    model = await uow.session.scalar(
        update(NluModel).where(_still_claimed(claim))
        .values(version=NluModel.version + 1, status="ready", data_hash=claim.data_hash,
                example_count=len(claim.examples), custom_intents=claim.custom_intents, trained_at=now,
                updated_at=now)
        .returning(NluModel).execution_options(synchronize_session=False, populate_existing=True))
    if model is None:
        raise Conflict("nlu_training_in_progress")
    uow.emit(MODEL_RETRAINED, tenant_id=claim.tenant_id,
             data={"version": model.version, "example_count": model.example_count, "data_hash": model.data_hash})
    return model


async def release_retrain(uow: UnitOfWork, claim: RetrainClaim) -> None:
    """Give a claim back after its training failed, so the next retrain need not wait for the lease.

    A no-op when the claim no longer holds (it was taken over, or its finish did commit after all).
    """
    await uow.session.execute(
        update(NluModel).where(_still_claimed(claim))
        .values(status=case((NluModel.version == 0, "default"), else_="ready"), updated_at=utcnow())
        .execution_options(synchronize_session=False))


async def do_retrain(unit_of_work: Callable[[], UnitOfWork], *, tenant_id: str) -> tuple[NluModel, NluPipeline]:
    """Retrain the tenant's model (defaults + its examples + its order patterns) and bump its version.

    Three units of work, each committed here, because training takes seconds (10-17 s with 20,000 examples,
    ``bench/slow_work.py``) and must not run inside a transaction: on SQLite any transaction holds the
    database's only write lock, and on PostgreSQL the row lock and a pooled connection. So: claim the model and read the
    data (``claim_retrain``), train with no transaction open, then store the version only if the claim
    still holds (``finish_retrain``). Each version is trained on exactly the data read with its claim, and
    that data's hash is stored with it. A failed or cancelled training gives the claim back.

    Raises ``Conflict`` (``nlu_training_in_progress``) while another retrain of the tenant holds the model.
    Returns the committed row and the trained pipeline; install it with ``registry.install`` (this returns
    only after the commit, so a retrain that did not commit never serves).
    """
    claim = await _committed(unit_of_work, lambda uow: claim_retrain(uow, tenant_id=tenant_id))
    try:
        pipeline = await asyncio.to_thread(train_claimed, claim)
        model = await _committed(unit_of_work, lambda uow: finish_retrain(uow, claim))
    except Conflict:
        raise  # the claim was taken over: nothing of ours to give back
    except BaseException:
        try:
            await _committed(unit_of_work, lambda uow: release_retrain(uow, claim))
        except Exception:
            # The claim then expires with its lease; the original error is the one to report.
            log.warning("releasing a failed retrain's claim failed", extra={"tenant_id": tenant_id},
                        exc_info=True)
        raise
    return model, pipeline


async def _committed(unit_of_work: Callable[[], UnitOfWork], step: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run one step of a retrain in a unit of work of its own, committed and closed before the next."""
    uow = unit_of_work()
    try:
        result = await step(uow)
        await uow.commit()
        return result
    finally:
        await uow.session.close()
