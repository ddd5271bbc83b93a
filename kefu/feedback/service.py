"""CSAT reads: the ratings of a conversation, the rating of its current resolution, and the report."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.conversations import service as conversation_service
from kefu.core.clock import utcnow
from kefu.feedback import policies
from kefu.feedback.models import CsatRating
from kefu.feedback.schemas import CsatAgentBucket, CsatPeriodBucket, CsatPrompt, CsatRead, CsatReport


async def ratings_of(*, session: AsyncSession, tenant_id: str, conversation_id: str) -> list[CsatRead]:
    """Every rating of a conversation (one per resolution), oldest first."""
    rows = await session.scalars(select(CsatRating).where(
        CsatRating.tenant_id == tenant_id, CsatRating.conversation_id == conversation_id).order_by(CsatRating.id))
    return [CsatRead.model_validate(r) for r in rows]


async def rating_for_resolution(
    *, session: AsyncSession, conversation_id: str, resolved_at: datetime | None
) -> CsatRating | None:
    if resolved_at is None:
        return None
    return (await session.scalars(select(CsatRating).where(
        CsatRating.conversation_id == conversation_id, CsatRating.resolved_at == resolved_at))).first()


async def prompt(*, session: AsyncSession, tenant_id: str, inbox_id: str, contact_id: str,
                 enabled: bool) -> CsatPrompt:
    """Whether to ask a returning widget visitor for a rating: only for their latest conversation in this inbox,
    once it is resolved and while its current resolution has no rating (so never again after they rated)."""
    latest = await conversation_service.list_conversations(
        session=session, tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact_id, order="desc", limit=1)
    if not latest:
        return CsatPrompt(ask=False)
    conversation = latest[0]
    rated = await rating_for_resolution(session=session, conversation_id=conversation.id,
                                        resolved_at=conversation.resolved_at) is not None
    if not policies.should_prompt(status=conversation.status, resolved_at=conversation.resolved_at, rated=rated,
                                  enabled=enabled, now=utcnow()):
        return CsatPrompt(ask=False)
    return CsatPrompt(ask=True, conversation_id=conversation.id, resolved_at=conversation.resolved_at)


async def report(
    *,
    session: AsyncSession,
    tenant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    period: str = "day",
    agent_id: str | None = None,
    inbox_id: str | None = None,
) -> CsatReport:
    """Count, average and distribution overall, per period (of the rating time, UTC) and per agent.

    Reads only three columns per rating; a tenant with millions of ratings in range would want a rollup
    table, which the analytics domain will own.
    """
    query = select(CsatRating.rating, CsatRating.created_at, CsatRating.agent_id).where(
        CsatRating.tenant_id == tenant_id)
    if since is not None:
        query = query.where(CsatRating.created_at >= since)
    if until is not None:
        query = query.where(CsatRating.created_at < until)
    if agent_id is not None:
        query = query.where(CsatRating.agent_id == agent_id)
    if inbox_id is not None:
        query = query.where(CsatRating.inbox_id == inbox_id)
    rows = (await session.execute(query)).all()
    periods: dict[str, list[int]] = defaultdict(list)
    agents: dict[str | None, list[int]] = defaultdict(list)
    for rating, created_at, agent in rows:
        periods[policies.period_of(created_at, period)].append(rating)
        agents[agent].append(rating)
    count, average, distribution = policies.summarise(r for r, _, _ in rows)
    by_period = []
    for key in sorted(periods):
        c, a, d = policies.summarise(periods[key])
        by_period.append(CsatPeriodBucket(period=key, count=c, average=a, distribution=d))
    by_agent = []
    for key in sorted(agents, key=lambda k: (k is None, k or "")):
        c, a, d = policies.summarise(agents[key])
        by_agent.append(CsatAgentBucket(agent_id=key, count=c, average=a, distribution=d))
    return CsatReport(count=count, average=average, distribution=distribution, by_period=by_period,
                      by_agent=by_agent)
