"""The bot worker: answers customer messages of bot-owned conversations, on every node.

Every node hears every ``message.created`` (Redis bus), so every node may try; the claim row in ``bot_turns``
lets exactly one answer. Events can be missed (a node restarting, a bus hiccup), so a sweep at start-up and
every ``SWEEP_SECONDS`` looks for customer messages of bot-owned conversations with no claim, and for claims
whose node died before answering, and answers those too.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from kefu.bot import service as bot_service
from kefu.bot.adapters import NluUnderstander
from kefu.bot.runner import BotRunner
from kefu.core.clock import utcnow
from kefu.core.tasks import cancel_and_wait
from kefu.events import types as ev
from kefu.events.types import DomainEvent

if TYPE_CHECKING:
    from kefu.runtime import Runtime

log = logging.getLogger("kefu.bot")
SWEEP_SECONDS = 5.0
SWEEP_HORIZON = timedelta(hours=6)  # older unanswered messages are for people, not a bot that just woke up
STALE_CLAIM = timedelta(seconds=60)
SWEEP_BATCH = 200  # unclaimed messages queued per sweep; the next sweep takes the rest
CONCURRENCY = 8

Item = tuple[str, str, str, bool]  # tenant id, conversation id, message id, take over a stale claim


def wants(event: DomainEvent) -> bool:
    """A customer's public message in a conversation the bot owns."""
    if event.type != ev.MESSAGE_CREATED:
        return False
    message = event.data.get("message") or {}
    conversation = event.data.get("conversation") or {}
    return (message.get("sender_kind") == "customer" and not message.get("private")
            and conversation.get("owner_kind") == "bot")


class BotWorker:
    def __init__(self, runtime: Runtime, runner: BotRunner | None = None) -> None:
        self.runtime = runtime
        self.runner = runner or BotRunner(runtime)
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self._pending: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(CONCURRENCY)

    def on_event(self, event: DomainEvent) -> None:
        if wants(event) and event.conversation_id:
            self._offer((event.tenant_id, event.conversation_id, event.data["message"]["id"], False))

    def _offer(self, item: Item) -> bool:
        if item[2] in self._pending:
            return False
        self._pending.add(item[2])
        self.queue.put_nowait(item)
        return True

    async def sweep(self) -> int:
        """Queue unclaimed messages and dead nodes' claims (not those already queued here); returns how many."""
        now = utcnow()
        async with self.runtime.sessionmaker() as session:
            unanswered = await bot_service.unanswered_messages(session=session, since=now - SWEEP_HORIZON,
                                                               limit=SWEEP_BATCH)
            stale = await bot_service.stale_claims(session=session, before=now - STALE_CLAIM)
            await session.commit()
        queued = 0
        for tenant_id, conversation_id, message_id in unanswered:
            queued += self._offer((tenant_id, conversation_id, message_id, False))
        for turn in stale:
            queued += self._offer((turn.tenant_id, turn.conversation_id, turn.message_id, True))
        return queued

    async def _handle(self, item: Item) -> None:
        tenant_id, conversation_id, message_id, take_over = item
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        try:
            async with self._slots, lock:  # one message of a conversation at a time, in arrival order
                await self.runner.handle_message(
                    tenant_id=tenant_id, conversation_id=conversation_id, message_id=message_id,
                    take_over_before=utcnow() - STALE_CLAIM if take_over else None)
        except Exception:
            log.exception("bot worker failed on a message", extra={"conversation_id": conversation_id})
        finally:
            self._pending.discard(message_id)
            if not lock.locked() and not lock._waiters:  # type: ignore[attr-defined]
                self._locks.pop(conversation_id, None)

    async def _sweeper(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bot sweep failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def warm_up(self) -> None:
        """Load the language model and the tokeniser now, in a thread, rather than on the first customer's
        message: the loop serves everyone else meanwhile, and the first answer is not seconds late."""
        try:
            await asyncio.to_thread(NluUnderstander.warm_up)
        except Exception:  # the first message will try again (and hand off if it fails too)
            log.exception("warming up the language model failed")

    async def run(self) -> None:
        self.runtime.bus.subscribe(self.on_event)
        warming = asyncio.create_task(self.warm_up(), name="kefu-bot-warm-up")
        sweeper = asyncio.create_task(self._sweeper(), name="kefu-bot-sweep")
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                item = await self.queue.get()
                task = asyncio.create_task(self._handle(item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            # The warm-up's thread cannot be stopped; its task stops waiting for it.
            await cancel_and_wait([sweeper, warming, *tasks])


async def run(runtime: Runtime) -> None:
    """The ``WORKERS`` entry: answer bot-owned conversations until cancelled."""
    worker = BotWorker(runtime)
    runtime.extras["bot_worker"] = worker
    await worker.run()
