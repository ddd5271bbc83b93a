"""The bot never blocks the event loop of its node while the language model loads.

Loading the model (and jieba's dictionary) takes seconds on a cold node. Instead of timing that, these tests
make it last as long as they like: the model is unloaded and the registry's loading lock is held by another
thread, exactly as during a slow first load. A node that understood messages on its event loop would then
freeze (the request below would never be served) until the lock is let go; a node that loads in a worker
thread keeps serving. The lock is let go after 30 s at the latest, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from kefu.bot import service as bot_service
from kefu.bot.runner import BotRunner
from kefu.nlp.pipeline import registry
from kefu.runtime import Runtime
from tests.bot.helpers import bot_replies, enable_bot, shopper, wait_for_bot
from tests.channels.chat import customer_says, start_session, widget_history
from tests.conftest import LiveServer, make_settings, runtime_on
from tests.factories import TenantFixture, create_tenant

SAFETY_VALVE = 30.0  # seconds: not a performance bound, only how long a frozen loop takes to fail the test


@dataclass
class HeldModel:
    release: threading.Event = field(default_factory=threading.Event)
    gave_up: threading.Event = field(default_factory=threading.Event)  # the safety valve let the lock go

    @property
    def still_loading(self) -> bool:
        return not self.release.is_set() and not self.gave_up.is_set() and not registry.has_default()


@contextmanager
def cold_model_being_loaded() -> Iterator[HeldModel]:
    """The default model unloaded, and its loader's lock held by another thread until ``release``."""
    saved = registry._default  # noqa: SLF001 (the only way to make this process's model cold again)
    registry._default = None  # noqa: SLF001
    held = HeldModel()
    locked = threading.Event()

    def hold() -> None:
        with registry._lock:  # noqa: SLF001
            locked.set()
            if not held.release.wait(SAFETY_VALVE):
                held.gave_up.set()

    holder = threading.Thread(target=hold, daemon=True, name="test-model-loader")
    holder.start()
    assert locked.wait(5)
    try:
        yield held
    finally:
        held.release.set()
        holder.join(SAFETY_VALVE + 5)
        if registry._default is None:  # noqa: SLF001
            registry._default = saved  # noqa: SLF001


async def _claimed(runtime: Runtime, message_id: str) -> bool:
    async with runtime.sessionmaker() as session:
        return message_id in await bot_service.claimed_message_ids(session=session, message_ids=[message_id])


async def _until(check, what: str, timeout: float = SAFETY_VALVE) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_other_work_runs_while_the_first_message_waits_for_the_model(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
    message_id = await customer.post("你好")
    with cold_model_being_loaded() as held:
        turn = asyncio.create_task(runner.handle_message(tenant_id=shop.id, conversation_id=customer.conversation_id,
                                                         message_id=message_id))
        await _until(lambda: _claimed(bot_runtime, message_id), "the bot to claim the message")
        # Other coroutines of the node (here: reads of the database) keep completing meanwhile.
        served = 0
        for _ in range(20):
            async with bot_runtime.sessionmaker() as session:
                await bot_service.claimed_message_ids(session=session, message_ids=[message_id])
            await asyncio.sleep(0.01)
            served += 1
        assert served == 20 and held.still_loading and not turn.done()
        held.release.set()
        report = await asyncio.wait_for(turn, SAFETY_VALVE)
    assert not held.gave_up.is_set()
    assert report.outcome == "answered" and report.intent == "greeting", report
    assert await bot_replies(bot_runtime, customer.conversation_id, message_id)


async def test_a_node_serves_http_while_its_bot_warms_up_and_while_it_waits_for_a_cold_model(
        fresh_db_url: str) -> None:
    async with runtime_on(fresh_db_url) as runtime:
        tenant = await create_tenant(runtime)
        await enable_bot(runtime, tenant.id, tenant.inbox_id)
        # 1. Start-up: the bot worker warms the model in a thread; the node answers requests meanwhile.
        with cold_model_being_loaded() as held:
            live = LiveServer(make_settings(fresh_db_url)).start()
            try:
                async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
                    assert (await http.get("/healthz")).status_code == 200
                    session = await start_session(http, tenant.inbox_id)
                    assert held.still_loading
                    held.release.set()

                    async def warmed() -> bool:
                        return registry.has_default()

                    await _until(warmed, "the worker's warm-up to load the model (no message was sent)")
                    assert not held.gave_up.is_set()

                    # 2. The model is cold again when the first customer writes: the bot waits for it in a
                    # thread, and the node goes on serving HTTP.
                    with cold_model_being_loaded() as held_again:
                        asked = await customer_says(http, session["visitor_token"], "你好")
                        await _until(lambda: _claimed(runtime, asked["id"]), "the bot worker to claim the message")
                        assert (await http.get("/healthz")).status_code == 200
                        history = await widget_history(http, session["visitor_token"])
                        assert [m["sender_kind"] for m in history] == ["customer"]
                        assert held_again.still_loading
                        held_again.release.set()
                        said = await wait_for_bot(http, session["visitor_token"], 1, timeout=SAFETY_VALVE)
                    assert not held_again.gave_up.is_set()
                    assert said and said[0]["sender_kind"] == "bot", said
            finally:
                live.stop()
