"""Stopping background tasks at shutdown, also those that let a cancellation go by.

A cancellation can be lost on its way: Python 3.11's ``asyncio.wait_for`` drops one that arrives as its wait
ends, and SQLAlchemy turns one that interrupts a statement into another error (``PendingRollbackError``), which
a loop that logs errors and goes on then swallows. A task that lost it runs on (a sweeper goes back to its
sleep), and a shutdown that only gathers it waits for ever, keeping the node, and any work it does on the
database, alive. So the cancellation is repeated until the task has stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger("kefu.core.tasks")

RECANCEL_SECONDS = 1.0


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel ``tasks`` and wait until every one has finished, cancelling again any that runs on."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    stopping = set(pending)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
        for task in pending:
            log.warning("a task ran on after its cancellation; cancelling it again", extra={"task": task.get_name()})
            task.cancel()
    for task in stopping:  # how each ended (often the cancellation, turned into another error) is not news
        if not task.cancelled():
            task.exception()

