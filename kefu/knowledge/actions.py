"""Writes of the knowledge base: entries and versions, the publish workflow, imports, recorded bot answers.

Counters (views, answers, feedback, handoffs) are bumped with ``UPDATE … SET n = n + 1`` so concurrent
requests on several nodes never lose an increment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, ValidationFailed, check_version
from kefu.core.ids import has_prefix, new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork
from kefu.knowledge import policies
from kefu.knowledge import service as knowledge_service
from kefu.knowledge.io import EntryDraft, plain_text
from kefu.knowledge.models import KbEntry, KbEntryVersion, KbQuery
from kefu.knowledge.schemas import (
    AnswerChoice,
    EntryCreate,
    EntryUpdate,
    ImportReport,
    ImportRowError,
    KnowledgeAnswer,
)

CONTENT_FIELDS = ("title", "question", "paraphrases", "answer", "chunks")


def _snapshot(entry: KbEntry, actor_id: str | None) -> KbEntryVersion:
    return KbEntryVersion(id=new_id("kbv"), tenant_id=entry.tenant_id, entry_id=entry.id, version=entry.version,
                          title=entry.title, question=entry.question, paraphrases=list(entry.paraphrases),
                          answer=entry.answer, chunks=list(entry.chunks), created_by=actor_id, created_at=utcnow())


def _emit(uow: UnitOfWork, entry: KbEntry, change: str) -> None:
    uow.emit(ev.KB_ENTRY_CHANGED, tenant_id=entry.tenant_id,
             data={"entry_id": entry.id, "change": change, "status": entry.status, "version": entry.version})


def _chunks_of(answer: str, kind: str) -> tuple[str, list[str]]:
    text = plain_text(answer)
    if kind == "article" or len(text) > policies.MAX_CHUNK_CHARS:
        return "article", policies.chunk_text(text)
    return kind, []


def _publish(entry: KbEntry) -> None:
    entry.status = "published"
    entry.published_version = entry.version
    entry.published_at = utcnow()


async def do_create_entry(uow: UnitOfWork, *, tenant_id: str, data: EntryCreate, actor_id: str | None) -> KbEntry:
    """Create an entry (version 1, a draft unless ``data.publish``)."""
    if data.key is not None and await _by_key(uow, tenant_id, data.key) is not None:
        raise Conflict("kb_entry_key_taken", details={"key": data.key})
    kind, chunks = _chunks_of(data.answer, data.kind)
    now = utcnow()
    entry = KbEntry(id=new_id("kb"), tenant_id=tenant_id, external_key=data.key, kind=kind, status="draft",
                    language=data.language, category=data.category, tags=data.tags, channels=data.channels,
                    product_ids=data.product_ids, valid_from=data.valid_from, valid_until=data.valid_until,
                    title=data.title, question=data.question.strip(),
                    paraphrases=[p.strip() for p in data.paraphrases if p.strip()], answer=data.answer,
                    chunks=chunks, version=1, created_by=actor_id, created_at=now, updated_at=now)
    if data.publish:
        _publish(entry)
    uow.session.add(entry)
    await uow.session.flush()
    uow.session.add(_snapshot(entry, actor_id))
    _emit(uow, entry, "created")
    return entry


async def _by_key(uow: UnitOfWork, tenant_id: str, key: str) -> KbEntry | None:
    return (await uow.session.scalars(select(KbEntry).where(KbEntry.tenant_id == tenant_id,
                                                            KbEntry.external_key == key))).first()


async def do_update_entry(uow: UnitOfWork, *, entry: KbEntry, data: EntryUpdate, expected_version: int | None,
                          actor_id: str | None) -> KbEntry:
    """Save a new version. A published entry keeps serving its published version until published again."""
    check_version(entry.version, expected_version)
    changes = data.model_dump(exclude_unset=True)
    window_from = changes.get("valid_from", entry.valid_from)
    window_until = changes.get("valid_until", entry.valid_until)
    if window_from and window_until and window_until <= window_from:
        raise ValidationFailed("kb_invalid_validity", details={"field": "valid_until"})
    for name in ("question", "answer"):
        if name in changes and changes[name] is None:
            del changes[name]
    for name, value in changes.items():
        setattr(entry, name, value if value is not None or name.startswith("valid_") else getattr(entry, name))
    if "answer" in changes:
        entry.kind, entry.chunks = _chunks_of(entry.answer, entry.kind)
    entry.version += 1
    entry.updated_at = utcnow()
    uow.session.add(_snapshot(entry, actor_id))
    await uow.session.flush()
    _emit(uow, entry, "updated")
    return entry


async def do_set_status(uow: UnitOfWork, *, entry: KbEntry, status: str, expected_version: int | None) -> KbEntry:
    """Publish the latest version, archive, or take back to draft (draft → published workflow)."""
    check_version(entry.version, expected_version)
    if not policies.can_transition(entry.status, status):
        raise Conflict("kb_invalid_transition", details={"from": entry.status, "to": status})
    if status == "published":
        _publish(entry)
    else:
        entry.status = status
    entry.updated_at = utcnow()
    await uow.session.flush()
    _emit(uow, entry, status)
    return entry


async def do_import_entries(uow: UnitOfWork, *, tenant_id: str, drafts: Sequence[EntryDraft],
                            errors: Sequence[ImportRowError], publish: bool, actor_id: str | None) -> ImportReport:
    """Create or update (by key) every parsed row in one transaction; unchanged rows are left alone.

    Rows with errors were already refused by the parser and are only reported; the good rows are all
    written or (if the transaction fails) none are, so an import is never partial or silent.
    """
    keys = [d.key for d in drafts if d.key]
    existing: dict[str, KbEntry] = {}
    for start in range(0, len(keys), 500):
        rows = await uow.session.scalars(select(KbEntry).where(KbEntry.tenant_id == tenant_id,
                                                               KbEntry.external_key.in_(keys[start:start + 500])))
        existing.update({r.external_key: r for r in rows if r.external_key})
    # An export names entries without a key by their own id, so that re-importing it updates them.
    own_ids = [k for k in keys if has_prefix(k, "kb") and k not in existing]
    for start in range(0, len(own_ids), 500):
        rows = await uow.session.scalars(select(KbEntry).where(KbEntry.tenant_id == tenant_id,
                                                               KbEntry.external_key.is_(None),
                                                               KbEntry.id.in_(own_ids[start:start + 500])))
        existing.update({r.id: r for r in rows})
    # Rows without an id are matched on their exact question and language, so importing the same file twice
    # does not duplicate them.
    keyless = [d.question for d in drafts if not d.key]
    by_question: dict[tuple[str, str], KbEntry] = {}
    for start in range(0, len(keyless), 500):
        rows = await uow.session.scalars(select(KbEntry).where(
            KbEntry.tenant_id == tenant_id, KbEntry.external_key.is_(None),
            KbEntry.question.in_(keyless[start:start + 500])))
        by_question.update({(r.language, r.question): r for r in rows})
    created = updated = unchanged = 0
    entry_ids: list[str] = []
    new_versions: list[KbEntry] = []
    report_errors = list(errors)
    now = utcnow()
    for draft in drafts:
        current = existing.get(draft.key) if draft.key else by_question.get((draft.language, draft.question))
        if current is not None and current.language != draft.language:
            report_errors.append(ImportRowError(line=draft.line, code="language_mismatch", key=draft.key,
                                                message=f"entry {draft.key} exists in {current.language}"))
            continue
        content = {"title": draft.title, "question": draft.question, "paraphrases": draft.paraphrases,
                   "answer": draft.answer, "chunks": draft.chunks}
        meta = {"kind": draft.kind, "category": draft.category, "tags": draft.tags, "channels": draft.channels,
                "product_ids": draft.product_ids, "valid_from": draft.valid_from, "valid_until": draft.valid_until}
        if current is None:
            entry = KbEntry(id=new_id("kb"), tenant_id=tenant_id, external_key=draft.key, status="draft",
                            language=draft.language, version=1, created_by=actor_id, created_at=now,
                            updated_at=now, **content, **meta)
            if publish:
                _publish(entry)
            uow.session.add(entry)
            created += 1
        else:
            entry = current
            same = all(getattr(entry, k) == v for k, v in content.items()) and all(
                getattr(entry, k) == v for k, v in meta.items())
            if same and (not publish or entry.status == "published" and entry.published_version == entry.version):
                unchanged += 1
                entry_ids.append(entry.id)
                continue
            if not same:
                for name, value in {**content, **meta}.items():
                    setattr(entry, name, value)
                entry.version += 1
            entry.updated_at = now
            if publish:
                _publish(entry)
            updated += 1
        entry_ids.append(entry.id)
        if current is None or not same:
            new_versions.append(entry)
    await uow.session.flush()  # entries first: versions reference them
    uow.session.add_all([_snapshot(entry, actor_id) for entry in new_versions])
    await uow.session.flush()
    if created or updated:
        uow.emit(ev.KB_ENTRY_CHANGED, tenant_id=tenant_id,
                 data={"change": "imported", "created": created, "updated": updated})
    return ImportReport(created=created, updated=updated, unchanged=unchanged,
                        errors=sorted(report_errors, key=lambda e: e.line), entry_ids=entry_ids)


async def _bump(uow: UnitOfWork, entry_ids: Sequence[str], **columns: int) -> None:
    if not entry_ids:
        return
    values = {name: getattr(KbEntry, name) + amount for name, amount in columns.items()}
    await uow.session.execute(update(KbEntry).where(KbEntry.id.in_(list(entry_ids))).values(**values))


async def do_answer(uow: UnitOfWork, *, tenant_id: str, question: str, language: str | None = None,
                    channel: str | None = None, conversation_id: str | None = None,
                    now: datetime | None = None) -> KnowledgeAnswer:
    """``service.answer`` and record it: the answer id takes feedback and handoffs, the entry counts a use.

    Pass a unit of work that has not written yet. Deciding may rebuild the search index, and the transaction
    is ended for that only if it has not written (on SQLite it holds the write lock). So nothing is written
    before the answer is decided."""
    result = await knowledge_service.answer(session=uow.session, tenant_id=tenant_id, question=question,
                                            language=language, channel=channel, now=now)
    shown = [result.best] if result.best else result.choices
    record = KbQuery(id=new_id("kbq"), tenant_id=tenant_id, question=question[:2000], language=result.language,
                     channel=channel, conversation_id=conversation_id, decision=result.decision,
                     entry_id=result.best.id if result.best else None,
                     candidates=[{"id": c.id, "confidence": c.confidence} for c in shown],
                     confidence=shown[0].confidence if shown else 0.0, created_at=utcnow())
    uow.session.add(record)
    if result.best:
        await _bump(uow, [result.best.id], answers_given=1, views=1)
    elif result.choices:
        await _bump(uow, [c.id for c in result.choices], views=1)
    await uow.session.flush()
    result.id = record.id
    return result


async def do_choose(uow: UnitOfWork, *, answer: KbQuery, entry_id: str) -> AnswerChoice:
    """The customer picked one of the offered choices: it becomes the answer given (feedback and handoffs after
    it count for that entry). Picking the same entry again changes nothing; another one moves the count."""
    choice = await knowledge_service.answer_choice(session=uow.session, answer=answer, entry_id=entry_id)
    if answer.entry_id != entry_id:
        if answer.entry_id:
            await _bump(uow, [answer.entry_id], answers_given=-1)
        await _bump(uow, [entry_id], answers_given=1)
        answer.entry_id = entry_id
        answer.confidence = choice.confidence
        await uow.session.flush()
    return choice


async def do_record_feedback(uow: UnitOfWork, *, answer: KbQuery, helpful: bool) -> KbQuery:
    """The customer's verdict; a changed verdict moves the count, a repeated one counts once."""
    verdict = "helpful" if helpful else "not_helpful"
    if answer.feedback == verdict:
        return answer
    if answer.entry_id:
        columns = {verdict: 1}
        if answer.feedback:
            columns[answer.feedback] = -1
        await _bump(uow, [answer.entry_id], **columns)
    answer.feedback = verdict
    await uow.session.flush()
    return answer


async def do_record_handoff(uow: UnitOfWork, *, answer: KbQuery) -> KbQuery:
    """The conversation went to a human after this answer (counted once per answer)."""
    if answer.handed_off:
        return answer
    answer.handed_off = True
    if answer.entry_id:
        await _bump(uow, [answer.entry_id], handoffs=1)
    await uow.session.flush()
    return answer


async def do_record_view(uow: UnitOfWork, *, entry: KbEntry) -> None:
    """An agent or customer opened the rendered entry."""
    await _bump(uow, [entry.id], views=1)

