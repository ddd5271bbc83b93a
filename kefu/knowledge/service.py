"""Reads of the knowledge base, and the seam the bot calls for a question without a flow.

The bot's seam (stable):

    answer = await knowledge_service.answer(session=s, tenant_id=t, question="退货运费谁出", language="zh",
                                            channel="webchat")            # read only, answer.id is None
    answer = await knowledge_actions.do_answer(uow, tenant_id=t, question=..., language=..., channel=...,
                                               conversation_id=...)        # same, recorded: answer.id = kbq_…
    answer.decision in {"answer", "choices", "handoff"}; answer.best / answer.choices (top 3, with confidence)
    choice = await knowledge_actions.do_choose(uow, answer=kbq, entry_id=...)  # the customer picked a choice
    await knowledge_actions.do_record_feedback(uow, tenant_id=t, answer_id=answer.id, helpful=False)
    await knowledge_actions.do_record_handoff(uow, tenant_id=t, answer_id=answer.id)

Recorded answers feed per-entry analytics (answers given, helpful / not helpful, handoffs after answer) and
gap mining (handoffs and "did not help" are clustered into proposed entries, see ``gaps``).

The search index (``kefu.knowledge.index.SearchIndex``) is built per tenant from published entries and
cached in this process; each use checks a cheap fingerprint of the tenant's published entries (one indexed
query), so an entry published or edited on another node is searched as it now is on the next question.
Validity windows are checked at query time against the clock, so an entry whose ``valid_until`` passes stops
being served with no write at all. Rebuilding the index and clustering gaps run with the caller's read
transaction ended (``kefu.core.read_transactions``): on SQLite it would hold the database's write lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.conversations import service as conversation_service
from kefu.core.clock import utcnow
from kefu.core.db import get_scoped
from kefu.core.errors import NotFound, ValidationFailed
from kefu.core.read_transactions import end_read_transaction
from kefu.knowledge import policies
from kefu.knowledge.index import Hit, IndexedEntry, SearchIndex
from kefu.knowledge.io import plain_text, sanitise_html
from kefu.knowledge.models import KbEntry, KbEntryVersion, KbQuery
from kefu.knowledge.schemas import (
    AnswerChoice,
    EntryAnalytics,
    EntryRead,
    EntryVersionRead,
    GapProposal,
    KnowledgeAnswer,
    RenderedEntry,
    SearchHit,
    Suggestion,
    Suggestions,
)
from kefu.knowledge.text import language_of

_CACHE_SIZE = 64
log = logging.getLogger("kefu.knowledge")


@dataclass
class _Cached:
    fingerprint: tuple[object, ...]
    index: SearchIndex


_indexes: OrderedDict[str, _Cached] = OrderedDict()
# One build at a time per tenant and event loop (asyncio locks belong to one loop; tests run several).
_build_locks: dict[tuple[int, str], asyncio.Lock] = {}


async def access_entry(*, session: AsyncSession, tenant_id: str, entry_id: str) -> KbEntry:
    return await get_scoped(session, KbEntry, entry_id, tenant_id=tenant_id, code="kb_entry_not_found")


async def access_answer(*, session: AsyncSession, tenant_id: str, answer_id: str) -> KbQuery:
    return await get_scoped(session, KbQuery, answer_id, tenant_id=tenant_id, code="kb_answer_not_found")


def entry_read(entry: KbEntry) -> EntryRead:
    return EntryRead(
        id=entry.id, key=entry.external_key, kind=entry.kind, status=entry.status, language=entry.language,
        category=entry.category, tags=entry.tags, channels=entry.channels, product_ids=entry.product_ids,
        valid_from=entry.valid_from, valid_until=entry.valid_until, title=entry.title, question=entry.question,
        paraphrases=entry.paraphrases, answer=entry.answer, chunk_count=len(entry.chunks), version=entry.version,
        published_version=entry.published_version, published_at=entry.published_at,
        analytics=EntryAnalytics(views=entry.views, answers_given=entry.answers_given, helpful=entry.helpful,
                                 not_helpful=entry.not_helpful, handoffs=entry.handoffs),
        created_at=entry.created_at, updated_at=entry.updated_at)


async def list_entries(*, session: AsyncSession, tenant_id: str, status: str | None = None,
                       language: str | None = None, category: str | None = None, q: str | None = None,
                       after_id: str | None = None, limit: int = 50) -> list[KbEntry]:
    """Entries in creation order; ``q`` is a substring of the question (use search for relevance)."""
    query = select(KbEntry).where(KbEntry.tenant_id == tenant_id)
    if status:
        query = query.where(KbEntry.status == status)
    if language:
        query = query.where(KbEntry.language == language)
    if category:
        query = query.where(KbEntry.category == category)
    if q:
        query = query.where(or_(KbEntry.question.icontains(q, autoescape=True),
                                KbEntry.title.icontains(q, autoescape=True)))
    if after_id:
        query = query.where(KbEntry.id > after_id)
    return list((await session.scalars(query.order_by(KbEntry.id).limit(limit))).all())


async def list_versions(*, session: AsyncSession, entry: KbEntry) -> list[EntryVersionRead]:
    rows = await session.scalars(select(KbEntryVersion).where(KbEntryVersion.entry_id == entry.id)
                                 .order_by(KbEntryVersion.version.desc()))
    return [EntryVersionRead.model_validate(r) for r in rows]


async def published_content(*, session: AsyncSession, entry: KbEntry) -> KbEntryVersion | None:
    if entry.published_version is None:
        return None
    return (await session.scalars(select(KbEntryVersion).where(
        KbEntryVersion.entry_id == entry.id, KbEntryVersion.version == entry.published_version))).first()


async def render(*, session: AsyncSession, entry: KbEntry) -> RenderedEntry:
    """The published answer as sanitised HTML (404 when the entry has never been published)."""
    content = await published_content(session=session, entry=entry)
    if content is None or entry.status != "published":
        raise NotFound("kb_entry_not_found")
    return RenderedEntry(id=entry.id, question=content.question, answer_html=sanitise_html(content.answer),
                         version=content.version)


async def _fingerprint(session: AsyncSession, tenant_id: str) -> tuple[object, ...]:
    """What changes whenever anything the index holds changes, in one indexed query.

    The index holds the published content and the entry's own columns (validity, channels, category, tags,
    language, products), which an edit changes without publishing. Every entry write moves ``updated_at``,
    and ``do_update_entry`` also bumps ``version``; the sum of versions catches an edit even when the writing
    node's clock is behind the newest ``updated_at``. Counters (views, answers) move neither, so answering
    questions never rebuilds the index."""
    row = (await session.execute(select(func.count(KbEntry.id), func.max(KbEntry.published_at),
                                        func.sum(KbEntry.published_version), func.max(KbEntry.updated_at),
                                        func.sum(KbEntry.version))
                                 .where(KbEntry.tenant_id == tenant_id, KbEntry.status == "published"))).one()
    return tuple(row)


_PUBLISHED = (KbEntry.id, KbEntry.language, KbEntry.category, KbEntry.channels, KbEntry.valid_from,
              KbEntry.valid_until, KbEntry.tags, KbEntry.product_ids, KbEntryVersion.title, KbEntryVersion.question,
              KbEntryVersion.paraphrases, KbEntryVersion.chunks, KbEntryVersion.answer)


async def _load_published(session: AsyncSession, tenant_id: str) -> list[Row[Any]]:
    """The published content as plain rows. ORM objects took 3.6-4.4 times as long to load (1.4-2.0 s against
    0.33-0.55 s for 15,000 entries: two runs of ``bench/slow_work.py --runs 3`` on 2 noisy shared cores), and on
    SQLite the loading transaction holds the write lock."""
    return list((await session.execute(
        select(*_PUBLISHED)
        .join(KbEntryVersion, (KbEntryVersion.entry_id == KbEntry.id)
              & (KbEntryVersion.version == KbEntry.published_version))
        .where(KbEntry.tenant_id == tenant_id, KbEntry.status == "published")
        .order_by(KbEntry.id))).all())


def _build(rows: list[Row[Any]]) -> SearchIndex:
    """The index of the loaded rows. This is CPU work (HTML to text, jieba, sparse matrices): run it in a thread."""
    return SearchIndex([IndexedEntry(id=r.id, questions=[r.question, *r.paraphrases, *r.chunks],
                                     answer="" if r.chunks else plain_text(r.answer), language=r.language,
                                     category=r.category, title=r.title, channels=tuple(r.channels),
                                     valid_from=r.valid_from, valid_until=r.valid_until, tags=tuple(r.tags),
                                     product_ids=tuple(r.product_ids or ()))
                        for r in rows])


async def search_index(*, session: AsyncSession, tenant_id: str) -> SearchIndex:
    """The tenant's index of published entries, rebuilt only when they changed.

    A rebuild is seconds of CPU work for a large KB (jieba, sparse matrices). On SQLite the session's read
    transaction holds the database's write lock (``BEGIN IMMEDIATE``), so it is ended before the build, and
    before waiting for another coroutine's build, so that writers do not wait meanwhile. Get the index before
    the transaction's first write: a transaction that has written cannot be ended, and it builds while holding
    the lock."""
    fingerprint = await _fingerprint(session, tenant_id)
    cached = _indexes.get(tenant_id)
    if cached is not None and cached.fingerprint == fingerprint:
        _indexes.move_to_end(tenant_id)
        return cached.index
    if not await end_read_transaction(session):
        # The caller keeps the write lock whatever we do. Waiting for the build lock here could deadlock:
        # the lock's holder may be waiting for the database. So build in this transaction, without the lock.
        log.warning("knowledge index rebuilt inside a transaction that has written: other writers wait",
                    extra={"tenant_id": tenant_id})
        rows = await _load_published(session, tenant_id)
        return _remember(tenant_id, fingerprint, await asyncio.to_thread(_build, rows))
    if len(_build_locks) > 4 * _CACHE_SIZE:
        _build_locks.clear()  # only idle locks are lost: a waiter holds its own reference
    lock = _build_locks.setdefault((id(asyncio.get_running_loop()), tenant_id), asyncio.Lock())
    async with lock:
        # Read the fingerprint again in the same transaction as the entries: the index is labelled with the
        # state it was built from (or an older one, which only costs a rebuild), never a newer one.
        fingerprint = await _fingerprint(session, tenant_id)
        cached = _indexes.get(tenant_id)
        if cached is not None and cached.fingerprint == fingerprint:
            _indexes.move_to_end(tenant_id)
            return cached.index
        rows = await _load_published(session, tenant_id)
        await end_read_transaction(session)  # began just above: it has not written
        return _remember(tenant_id, fingerprint, await asyncio.to_thread(_build, rows))


def _remember(tenant_id: str, fingerprint: tuple[object, ...], index: SearchIndex) -> SearchIndex:
    _indexes[tenant_id] = _Cached(fingerprint, index)
    _indexes.move_to_end(tenant_id)
    while len(_indexes) > _CACHE_SIZE:
        _indexes.popitem(last=False)
    return index


def _hit(hit: Hit, query: str) -> SearchHit:
    return SearchHit(id=hit.id, question=hit.entry.questions[0] if hit.entry.questions else hit.entry.title,
                     matched=hit.matched, snippet=hit.snippet(query), score=round(hit.score, 4),
                     confidence=round(hit.confidence, 4), category=hit.entry.category, language=hit.entry.language,
                     product_ids=list(hit.entry.product_ids))


async def search(*, session: AsyncSession, tenant_id: str, query: str, language: str | None = None,
                 category: str | None = None, channel: str | None = None, product: str | None = None,
                 limit: int = 5, now: datetime | None = None) -> list[SearchHit]:
    """Published, currently valid entries for ``query``, best first, with highlighted snippets.

    Filters narrow the result: ``language``, ``category``, ``channel`` (visible there) and ``product`` (linked
    to that catalogue product)."""
    index = await search_index(session=session, tenant_id=tenant_id)
    hits = index.search(query, top=limit, language=language, category=category, channel=channel, product=product,
                        now=now or utcnow())
    return [_hit(h, query) for h in hits]


async def _answer_html(session: AsyncSession, entry_ids: list[str]) -> dict[str, str]:
    if not entry_ids:
        return {}
    rows = (await session.execute(
        select(KbEntry.id, KbEntryVersion.answer)
        .join(KbEntryVersion, (KbEntryVersion.entry_id == KbEntry.id)
              & (KbEntryVersion.version == KbEntry.published_version))
        .where(KbEntry.id.in_(entry_ids)))).all()
    return {entry_id: sanitise_html(answer) for entry_id, answer in rows}


async def answer_choice(*, session: AsyncSession, answer: KbQuery, entry_id: str) -> AnswerChoice:
    """One of the entries offered as a choice by a recorded answer, with its published answer as safe HTML."""
    offered = {c.get("id"): c for c in answer.candidates or [] if isinstance(c, dict)}
    if answer.decision != "choices" or entry_id not in offered:
        raise ValidationFailed("kb_choice_not_offered", details={"entry_id": entry_id})
    entry = await session.get(KbEntry, entry_id)
    content = await published_content(session=session, entry=entry) if entry is not None else None
    if entry is None or entry.tenant_id != answer.tenant_id or entry.status != "published" or content is None:
        raise ValidationFailed("kb_choice_not_offered", details={"entry_id": entry_id})
    return AnswerChoice(id=entry.id, question=content.question, answer_html=sanitise_html(content.answer),
                        confidence=float(offered[entry_id].get("confidence") or 0.0))


async def answer(*, session: AsyncSession, tenant_id: str, question: str, language: str | None = None,
                 channel: str | None = None, now: datetime | None = None) -> KnowledgeAnswer:
    """Decide how the bot answers ``question`` from the KB (read only; ``actions.do_answer`` records it)."""
    language = language or language_of(question)
    index = await search_index(session=session, tenant_id=tenant_id)
    hits = index.search(question, top=policies.CHOICES, language=language, channel=channel, now=now or utcnow())
    decision = policies.decide([h.confidence for h in hits])
    shown = [] if decision == "handoff" else hits
    html = await _answer_html(session, [h.id for h in shown])
    choices = [AnswerChoice(id=h.id, question=h.entry.questions[0], answer_html=html.get(h.id, ""),
                            confidence=round(h.confidence, 4)) for h in shown]
    return KnowledgeAnswer(question=question, language=language, decision=decision,
                           best=choices[0] if decision == "answer" else None,
                           choices=choices if decision == "choices" else [])


async def suggestions(*, session: AsyncSession, tenant_id: str, conversation_id: str, limit: int = 5,
                      messages: int = 3) -> Suggestions:
    """Entries for the conversation's latest customer messages, for the agent to insert with one click."""
    conversation = await conversation_service.access_conversation(session=session, tenant_id=tenant_id,
                                                                  conversation_id=conversation_id)
    recent = await conversation_service.list_messages(session=session, conversation_id=conversation.id,
                                                      before_id="~", limit=50, include_private=False)
    texts = [m.body for m in recent if m.sender_kind == "customer" and (m.body or "").strip()][-messages:]
    query = " ".join(texts)[-1000:]
    if not query.strip():
        return Suggestions(conversation_id=conversation.id, query="", data=[])
    index = await search_index(session=session, tenant_id=tenant_id)
    hits = index.search(query, top=limit, language=language_of(query), now=utcnow())
    html = await _answer_html(session, [h.id for h in hits])
    return Suggestions(conversation_id=conversation.id, query=query,
                       data=[Suggestion(**_hit(h, query).model_dump(), answer_html=html.get(h.id, "")) for h in hits])


async def gaps(*, session: AsyncSession, tenant_id: str, days: int = 30, limit: int = 20,
               now: datetime | None = None) -> list[GapProposal]:
    """Cluster recent unanswered / "did not help" questions into proposed entries, most pressing first.

    A question counts when the knowledge base had no answer for it, when the customer said the answer did not
    help, or when the conversation went to a person right after the answer."""
    now = now or utcnow()
    rows = (await session.scalars(
        select(KbQuery).where(KbQuery.tenant_id == tenant_id, KbQuery.created_at >= now - timedelta(days=days),
                              or_(KbQuery.decision == "handoff", KbQuery.feedback == "not_helpful",
                                  KbQuery.handed_off.is_(True)))
        .order_by(KbQuery.created_at.desc()).limit(5000))).all()
    if not rows:
        return []
    # Clustering is O(n²) (seconds for a few thousand questions): on SQLite the read transaction would hold the
    # database's write lock meanwhile. The rows stay loaded: the session does not expire them.
    await end_read_transaction(session)
    clusters = await asyncio.to_thread(policies_cluster, [r.question for r in rows])
    proposals = []
    for members in clusters:
        items = [rows[i] for i in members]
        score = sum(math.pow(0.5, (now - r.created_at).total_seconds() / 604800) for r in items)
        examples = list(dict.fromkeys(r.question.strip() for r in items))
        proposals.append(GapProposal(
            proposed_question=items[0].question.strip() if len(members) < 3 else _central(examples),
            language=max({r.language for r in items}, key=lambda lang: sum(r.language == lang for r in items)),
            count=len(items), last_asked_at=max(r.created_at for r in items), score=round(score, 3),
            examples=examples[:5],
            not_helpful_entry_ids=sorted({r.entry_id for r in items if r.feedback == "not_helpful" and r.entry_id})))
    proposals.sort(key=lambda p: (-p.score, -p.count))
    return proposals[:limit]


def _central(examples: list[str]) -> str:
    """The example sharing the most character bigrams with the others: a readable title for the cluster."""
    grams = [{e[i:i + 2].lower() for i in range(len(e) - 1)} for e in examples]
    return examples[max(range(len(examples)), key=lambda i: sum(len(grams[i] & g) for g in grams))]


def policies_cluster(questions: list[str], threshold: float = 0.55) -> list[list[int]]:
    """Agglomerative (average linkage, cosine) clustering of TF-IDF character n-grams; works for zh and en."""
    if len(questions) == 1:
        return [[0]]
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True,
                              preprocessor=lambda s: " ".join(s.lower().split())).fit_transform(questions)
    labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                     distance_threshold=threshold).fit_predict(vectors.toarray())
    groups: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(int(label), []).append(position)
    return list(groups.values())
