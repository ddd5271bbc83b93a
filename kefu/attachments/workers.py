"""Background clean-up: uploads that never made it into a message are removed after a grace period.

A visitor who picks a photo and closes the tab, or an agent who uploads a file for a conversation and
never sends it, leaves a file nobody references; without this loop such files would pile up on disk for
ever. "Sent" is the upload's ``attached_at``, set when a message first carries it.
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
BATCH = 500


async def sweep_once(runtime: Runtime, store: AttachmentStore, *, grace: timedelta = ORPHAN_GRACE) -> int:
    """Forget never-sent uploads older than ``grace`` in batches; returns how many were removed."""
    removed = 0
    while True:
        uow = runtime.unit_of_work()
        try:
            swept = await attachment_actions.do_forget_orphans(uow, older_than=utcnow() - grace, limit=BATCH)
            await uow.commit()
        finally:
            await uow.session.close()
        for key in swept.storage_keys:
            await store.delete(key)
        removed += swept.rows
        if swept.rows < BATCH:
            return removed


async def run(runtime: Runtime) -> None:
    """Sweep every hour until cancelled; the store is the one the API uses (``runtime.extras``)."""
    store: AttachmentStore = runtime.extras["attachment_store"]  # type: ignore[assignment]
    grace = timedelta(seconds=runtime.settings.attachment_unsent_retention_seconds)
    while True:
        try:
            removed = await sweep_once(runtime, store, grace=grace)
            if removed:
                log.info("orphaned uploads removed", extra={"count": removed})
        except Exception:
            log.exception("attachment sweep failed")
        await asyncio.sleep(SWEEP_SECONDS)
