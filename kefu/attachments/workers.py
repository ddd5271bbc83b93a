"""Background clean-up: uploads that never made it into a message are removed after a grace period.

A visitor who picks a photo and closes the tab leaves a file nobody references; without this loop such
files would pile up on disk for ever.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from kefu.attachments import actions as attachment_actions
from kefu.attachments.ports import AttachmentStore
from kefu.core.clock import utcnow

if TYPE_CHECKING:
    from kefu.runtime import Runtime

log = logging.getLogger("kefu.attachments")

ORPHAN_GRACE = timedelta(hours=24)
SWEEP_SECONDS = 3600.0


async def sweep_once(runtime: Runtime, store: AttachmentStore, *, grace: timedelta = ORPHAN_GRACE) -> int:
    """Forget orphaned uploads in batches; returns how many were removed."""
    removed = 0
    while True:
        uow = runtime.unit_of_work()
        try:
            keys = await attachment_actions.do_forget_orphans(uow, older_than=utcnow() - grace)
            await uow.commit()
        finally:
            await uow.session.close()
        for key in keys:
            await store.delete(key)
        removed += len(keys)
        if len(keys) < 500:
            return removed


async def run(runtime: Runtime) -> None:
    """Sweep every hour until cancelled; the store is the one the API uses (``runtime.extras``)."""
    store: AttachmentStore = runtime.extras["attachment_store"]  # type: ignore[assignment]
    while True:
        try:
            removed = await sweep_once(runtime, store)
            if removed:
                log.info("orphaned uploads removed", extra={"count": removed})
        except Exception:
            log.exception("attachment sweep failed")
        await asyncio.sleep(SWEEP_SECONDS)
