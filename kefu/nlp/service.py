"""Reads of the nlp domain, and the public ``analyse`` API used by the bot, the API and the CLI.

See the package docstring (``kefu/nlp/__init__.py``) for the contract.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.core.clock import utcnow
from kefu.core.db import get_scoped
from kefu.core.read_transactions import end_read_transaction
from kefu.nlp.entities import DEFAULT_ORDER_PATTERNS, OrderPattern, Product, compile_tenant_pattern
from kefu.nlp.intents import DEFAULT_INTENTS, LinearIntentTrainer, default_examples
from kefu.nlp.models import NluExample, NluIntent, NluModel, NluOrderPattern
from kefu.nlp.pipeline import NluPipeline, registry
from kefu.nlp.schemas import IntentRead, ModelRead
from kefu.nlp.understanding import Understanding

ProductLike = Product | str | dict[str, Any]
log = logging.getLogger("kefu.nlp")


def pipeline_for(tenant_id: str | None = None) -> NluPipeline:
    """The pipeline that serves ``tenant_id`` in this process (the default one without a tenant model)."""
    return registry.for_tenant(tenant_id)


def analyse(
    text: str,
    *,
    tenant_id: str | None = None,
    now: datetime | date | None = None,
    products: Iterable[ProductLike] | None = None,
    order_patterns: Sequence[OrderPattern] | None = None,
) -> Understanding:
    """Understand one customer message: language, intent, entities, emotion and sentiment."""
    return pipeline_for(tenant_id).analyse(text, now=now, products=products, order_patterns=order_patterns)


def analyse_batch(
    texts: Sequence[str],
    *,
    tenant_id: str | None = None,
    now: datetime | date | None = None,
    products: Iterable[ProductLike] | None = None,
    order_patterns: Sequence[OrderPattern] | None = None,
) -> list[Understanding]:
    """Understand many messages in one pass of the model (the fast path for evaluation and imports)."""
    return pipeline_for(tenant_id).analyse_batch(texts, now=now, products=products, order_patterns=order_patterns)


# ------------------------------------------------------------------------------------------ tenant data

# How long a node trusts its view of a tenant's model version before asking the database again.
MODEL_CHECK_SECONDS = 5.0
_checked: dict[str, float] = {}
# Per event loop: an asyncio.Lock belongs to the loop it first waited in, and one process may run several
# loops (the test suite runs its servers' loops beside its own).
_training: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()

# How long a retrain's claim on a tenant's model (status "training") keeps other retrains out. A claim older
# than this was left by a retrain that will never finish (its node died or restarted), and the next retrain
# takes it over. Training the most a tenant may have, 20,000 examples, took 10 to 17 s (medians of two runs of
# `bench/slow_work.py --runs 3` on 2 noisy shared cores, at different moments): fifteen minutes leaves room for a
# machine many times slower or busier, while a crash keeps a tenant from retraining for at most a quarter of an hour.
# A live retrain that outlasts it loses only its own result (its finish answers 409).
TRAINING_LEASE = timedelta(minutes=15)


async def access_intent(*, session: AsyncSession, tenant_id: str, intent_id: str) -> NluIntent:
    """Load a custom intent of the tenant; another tenant's id answers like a missing one."""
    return await get_scoped(session, NluIntent, intent_id, tenant_id=tenant_id, code="nlu_intent_not_found")


async def access_example(*, session: AsyncSession, tenant_id: str, example_id: str) -> NluExample:
    return await get_scoped(session, NluExample, example_id, tenant_id=tenant_id, code="nlu_example_not_found")


async def access_order_pattern(*, session: AsyncSession, tenant_id: str, pattern_id: str) -> NluOrderPattern:
    return await get_scoped(session, NluOrderPattern, pattern_id, tenant_id=tenant_id, code="nlu_pattern_not_found")


async def custom_intent_by_name(*, session: AsyncSession, tenant_id: str, name: str) -> NluIntent | None:
    return await session.scalar(select(NluIntent).where(NluIntent.tenant_id == tenant_id, NluIntent.name == name))


async def list_intents(*, session: AsyncSession, tenant_id: str) -> list[IntentRead]:
    """The default taxonomy followed by the tenant's custom intents, with the tenant's example counts."""
    counts: dict[str, int] = {name: n for name, n in (await session.execute(
        select(NluExample.intent, func.count()).where(NluExample.tenant_id == tenant_id)
        .group_by(NluExample.intent))).all()}
    out = [IntentRead(id=None, name=name, builtin=True, example_count=counts.get(name, 0))
           for name in DEFAULT_INTENTS]
    customs = await session.scalars(
        select(NluIntent).where(NluIntent.tenant_id == tenant_id).order_by(NluIntent.created_at, NluIntent.id))
    out.extend(intent_read(i, counts.get(i.name, 0)) for i in customs)
    return out


def intent_read(intent: NluIntent, example_count: int) -> IntentRead:
    return IntentRead(id=intent.id, name=intent.name, description=intent.description, builtin=False,
                      example_count=example_count, created_at=intent.created_at)


async def count_examples(*, session: AsyncSession, tenant_id: str, intent: str) -> int:
    return int(await session.scalar(select(func.count()).select_from(NluExample).where(
        NluExample.tenant_id == tenant_id, NluExample.intent == intent)) or 0)


async def list_examples(*, session: AsyncSession, tenant_id: str, intent: str | None = None,
                        after_id: str | None = None, limit: int = 50) -> list[NluExample]:
    """A tenant's examples in creation order (ids are time-ordered), optionally of one intent."""
    q = select(NluExample).where(NluExample.tenant_id == tenant_id)
    if intent is not None:
        q = q.where(NluExample.intent == intent)
    if after_id is not None:
        q = q.where(NluExample.id > after_id)
    return list(await session.scalars(q.order_by(NluExample.id).limit(limit)))


async def list_order_patterns(*, session: AsyncSession, tenant_id: str) -> list[NluOrderPattern]:
    return list(await session.scalars(select(NluOrderPattern).where(NluOrderPattern.tenant_id == tenant_id)
                                      .order_by(NluOrderPattern.id)))


async def get_model(*, session: AsyncSession, tenant_id: str) -> NluModel | None:
    return await session.scalar(select(NluModel).where(NluModel.tenant_id == tenant_id))


def training_claimed(model: NluModel, *, now: datetime) -> bool:
    """Whether a retrain holds the model: it claimed it less than ``TRAINING_LEASE`` before ``now``."""
    return model.status == "training" and now - model.updated_at < TRAINING_LEASE


def model_read(model: NluModel | None, tenant_id: str) -> ModelRead:
    if model is None:
        return ModelRead(version=0, status="default", example_count=0, custom_intents=0, trained_at=None,
                         loaded_version=registry.tenant_version(tenant_id))
    status = model.status
    if status == "training" and not training_claimed(model, now=utcnow()):
        status = "ready" if model.version else "default"  # an abandoned claim: nothing is training
    return ModelRead(version=model.version, status=status, example_count=model.example_count,
                     custom_intents=model.custom_intents, trained_at=model.trained_at,
                     loaded_version=registry.tenant_version(tenant_id))


async def training_data(*, session: AsyncSession, tenant_id: str) -> tuple[list[tuple[str, str]],
                                                                         list[OrderPattern]]:
    """The tenant's own examples and order patterns (what a tenant model adds to the defaults)."""
    rows = (await session.execute(select(NluExample.text, NluExample.intent)
                                  .where(NluExample.tenant_id == tenant_id).order_by(NluExample.id))).all()
    patterns = [tenant_order_pattern(name=p.name, regex=p.regex, marketplace=p.marketplace)
                for p in await list_order_patterns(session=session, tenant_id=tenant_id)]
    return [(str(t), str(i)) for t, i in rows], patterns


def tenant_order_pattern(*, name: str, regex: str, marketplace: str) -> OrderPattern:
    """A tenant's stored format as the extractor runs it (on RE2); its capturing group, if any, is the number."""
    compiled = compile_tenant_pattern(regex)
    groups = int(getattr(compiled, "groups", 0) or 0)
    return OrderPattern(name=name, regex=regex, marketplace=marketplace, group=1 if groups == 1 else 0)


def training_data_hash(*, examples: Sequence[tuple[str, str]], patterns: Sequence[OrderPattern]) -> str:
    """A sha256 of what a tenant model is trained on, independent of row order."""
    digest = hashlib.sha256()
    for text, intent in sorted(examples):
        digest.update(f"e\x1f{intent}\x1f{text}\x1e".encode())
    for p in sorted(patterns, key=lambda p: (p.name, p.regex, p.marketplace)):
        digest.update(f"p\x1f{p.name}\x1f{p.regex}\x1f{p.marketplace}\x1e".encode())
    return digest.hexdigest()


def build_pipeline(*, examples: Sequence[tuple[str, str]], patterns: Sequence[OrderPattern],
                   version: int) -> NluPipeline:
    """Train a tenant pipeline: the defaults plus its examples (CPU work; run it in a thread)."""
    default = registry.default()
    all_patterns = (*patterns, *DEFAULT_ORDER_PATTERNS)
    if not examples:
        return NluPipeline(backend=default.backend, order_patterns=all_patterns, version=f"{default.version}+p{version}")
    backend = LinearIntentTrainer().train([*default_examples(), *examples], version=f"tenant-v{version}")
    return NluPipeline(backend=backend, order_patterns=all_patterns, version=backend.version)


async def ensure_tenant_pipeline(*, session: AsyncSession, tenant_id: str) -> NluPipeline:
    """The tenant's pipeline, retrained here first when another node (or a restart) left this one stale.

    The version check costs one indexed query at most every ``MODEL_CHECK_SECONDS`` per tenant. ``session``
    must have no pending changes: its transaction is ended before any wait or training, so that no caller
    holds SQLite's write lock (or a pooled PostgreSQL connection) for the seconds a training takes.
    """
    if not registry.has_default():
        # First use in this process: load (or train) off the event loop.
        await end_read_transaction(session)
        await asyncio.to_thread(registry.default)
    checked_at = time.monotonic()
    if checked_at - _checked.get(tenant_id, -1e9) < MODEL_CHECK_SECONDS:
        return registry.for_tenant(tenant_id)
    model = await get_model(session=session, tenant_id=tenant_id)
    await end_read_transaction(session)
    if model is not None and model.version > 0 and _is_stale(registry.tenant_state(tenant_id), model):
        async with _training_lock(tenant_id):
            if _is_stale(registry.tenant_state(tenant_id), model):  # else another caller reloaded meanwhile
                examples, patterns = await training_data(session=session, tenant_id=tenant_id)
                await end_read_transaction(session)
                pipeline = await asyncio.to_thread(build_pipeline, examples=examples, patterns=patterns,
                                                   version=model.version)
                if model.data_hash and training_data_hash(examples=examples, patterns=patterns) != model.data_hash:
                    # The data changed after that retrain (it takes effect at the next one): this node now
                    # serves the newer data. It is recorded under the stored hash, or it would retrain every
                    # check.
                    log.info("nlu model reloaded from data newer than its version", extra={"tenant_id": tenant_id})
                registry.install(tenant_id, model.version, pipeline, model.data_hash)
    # Only now: a caller that skipped the check meanwhile would have been served the stale pipeline.
    _checked[tenant_id] = checked_at
    return registry.for_tenant(tenant_id)


def _training_lock(tenant_id: str) -> asyncio.Lock:
    """The lock that lets one coroutine of this event loop reload a tenant's model while the others wait."""
    locks = _training.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(tenant_id, asyncio.Lock())


def _is_stale(loaded: tuple[int, str | None] | None, model: NluModel) -> bool:
    """Reload when the stored version is newer, or when it is the same version trained on other data."""
    if loaded is None or loaded[0] < model.version:
        return True
    return loaded[0] == model.version and model.data_hash is not None and loaded[1] != model.data_hash


def forget_checks(tenant_id: str | None = None) -> None:
    """Make the next ``ensure_tenant_pipeline`` ask the database (after a retrain on this node)."""
    if tenant_id is None:
        _checked.clear()
    else:
        _checked.pop(tenant_id, None)


async def analyse_for_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    text: str,
    now: datetime | date | None = None,
    products: Iterable[ProductLike] | None = None,
) -> Understanding:
    """``analyse`` with the tenant's current custom model and order patterns (loading them if needed)."""
    pipeline = await ensure_tenant_pipeline(session=session, tenant_id=tenant_id)
    return pipeline.analyse(text, now=now, products=products)


async def analyse_batch_for_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    texts: Sequence[str],
    now: datetime | date | None = None,
    products: Iterable[ProductLike] | None = None,
) -> list[Understanding]:
    pipeline = await ensure_tenant_pipeline(session=session, tenant_id=tenant_id)
    return pipeline.analyse_batch(texts, now=now, products=products)
