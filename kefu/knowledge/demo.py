"""The demo shop's knowledge base (zh and en FAQs in ``data/demo_kb.jsonl``), seeded by ``kefu demo``."""

from __future__ import annotations

from kefu.events.uow import UnitOfWork
from kefu.knowledge import actions as knowledge_actions
from kefu.knowledge.io import parse
from kefu.knowledge.schemas import ImportReport, ImportRowError
from kefu.knowledge.text import DATA_DIR


async def seed_demo_kb(uow: UnitOfWork, *, tenant_id: str) -> ImportReport:
    """Import and publish the demo entries; running it again changes nothing (entries are matched by id)."""
    drafts, errors = parse((DATA_DIR / "demo_kb.jsonl").read_text(encoding="utf-8"), "jsonl")
    return await knowledge_actions.do_import_entries(uow, tenant_id=tenant_id, drafts=drafts, publish=True,
                                                     actor_id=None,
                                                     errors=[ImportRowError(**e.as_dict()) for e in errors])
