"""Helpers of the retrain tests: examples, retrains and the stored model, through the domain actions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from kefu.core.errors import Conflict
from kefu.nlp import actions as nlp_actions
from kefu.nlp import service as nlp_service
from kefu.nlp.models import NluModel
from kefu.runtime import Runtime
from tests.factories import create_tenant

EXAMPLES = ["能帮我包装成礼物吗", "可以礼品包装吗", "需要礼物包装", "can you gift wrap it", "please wrap it as a present"]


async def add_examples(runtime: Runtime, tenant_id: str, texts: list[str]) -> None:
    uow = runtime.unit_of_work()
    try:
        await nlp_actions.do_add_examples(uow, tenant_id=tenant_id, intent="track_order", texts=texts)
        await uow.commit()
    finally:
        await uow.session.close()


async def retrain(runtime: Runtime, tenant_id: str) -> int | str:
    """One whole retrain: the version it committed, or the code it was refused with."""
    try:
        model, _ = await nlp_actions.do_retrain(runtime.unit_of_work, tenant_id=tenant_id)
    except Conflict as exc:
        return exc.code
    return model.version


async def stored(runtime: Runtime, tenant_id: str) -> NluModel | None:
    async with runtime.sessionmaker() as session:
        return await session.scalar(select(NluModel).where(NluModel.tenant_id == tenant_id))


async def trained_tenant(runtime: Runtime) -> tuple[Any, NluModel]:
    """A new tenant with ``EXAMPLES`` and its first retrain stored (version 1): the tenant and its model row."""
    tenant = await create_tenant(runtime)
    await add_examples(runtime, tenant.id, EXAMPLES)
    assert await retrain(runtime, tenant.id) == 1
    model = await stored(runtime, tenant.id)
    assert model is not None
    return tenant, model


async def current_hash(runtime: Runtime, tenant_id: str) -> str:
    async with runtime.sessionmaker() as session:
        examples, patterns = await nlp_service.training_data(session=session, tenant_id=tenant_id)
    return nlp_service.training_data_hash(examples=examples, patterns=patterns)


async def until_training(runtime: Runtime, tenant_id: str, retraining: asyncio.Task[Any]) -> str:
    """The stored status once a running retrain has claimed the model, or once that retrain is over (before
    retrains trained outside a transaction, nobody could read the model until the retrain had committed)."""
    while True:
        model = await stored(runtime, tenant_id)
        if (model is not None and model.status == "training") or retraining.done():
            return model.status if model is not None else "default"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def thread_work_held(loop: asyncio.AbstractEventLoop) -> AsyncIterator[Callable[[], None]]:
    """Until ``release()``, the work ``loop`` hands to threads (``asyncio.to_thread``: training) waits, so a
    retrain stays in its training step however fast this machine trains. The loop's default executor becomes
    a one-thread pool whose thread is kept busy until then; the previous executor comes back afterwards."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="held-thread-work")
    gate = threading.Event()
    pool.submit(gate.wait)

    async def swap(executor: Any) -> Any:
        # asyncio's loop: put back exactly what was there ("none yet" included, which set_default_executor
        # refuses); uvloop's (the live servers') does not show it, and gets a fresh pool afterwards.
        previous = getattr(loop, "_default_executor", _UNKNOWN)
        if previous is _UNKNOWN or executor is _UNKNOWN:
            loop.set_default_executor(ThreadPoolExecutor() if executor is _UNKNOWN else executor)
        else:
            loop._default_executor = executor  # type: ignore[attr-defined]  # noqa: SLF001
        return previous

    swapped, previous = False, None
    try:
        previous, swapped = await _on(loop, swap(pool)), True
        yield gate.set
    finally:
        gate.set()  # always: a pool thread left waiting would hang the interpreter's exit
        if swapped:
            await _on(loop, swap(previous))
        pool.shutdown(wait=False)


_UNKNOWN = object()


async def _on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on ``loop``: this one, or a live server's in its thread."""
    if loop is asyncio.get_running_loop():
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
