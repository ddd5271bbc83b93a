"""In-process cache of the agents' routing state, so that a routing pass does not read every agent.

One ``AgentCache`` per database engine (that is, per node: every runtime has its own engine) and tenant. It
holds an ``AgentView`` for every agent profile of the tenant (attributes, capacities, presence, load per
channel, last offer), the eligibility cache (``policies.Matcher``) over exactly those views, the agents free
for work in idle order (kept sorted incrementally, never sorted per pass) and the routing configuration.

The database stays the authority; the cache only makes the common case cheap:

* a routing pass decides on the cache, then locks the agents it chose and re-reads their presence, profile
  version and load (``actions._confirm``): a decision that no longer fits is dropped and those agents are
  refreshed from what was read under the lock, so a stale cache can cost a retry but never an over-assignment
  or an offer to someone who is not available;
* the pass's own offers update the cache as they are made (load + 1, last offer = now); every other write
  of the routing actions marks the agents it touches *dirty*, and the next pass re-reads just those agents
  (one small query each for profiles and loads);
* the routing loop marks agents dirty again when the committed events arrive — from this node (a pass that
  read an agent between another request's write and its commit) and from other nodes over the bus;
* a full re-read (dynamic columns and loads of all agents; attributes only for changed profile versions)
  happens on the first pass and every ``RESYNC_SECONDS`` in the timer's housekeeping pass, which repairs
  anything an event could not tell (a lost event, a rolled-back pass whose offers the cache had counted).
"""

from __future__ import annotations

import time
import weakref
from bisect import bisect_left, insort
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.routing import policies, service
from kefu.routing.models import AgentProfile

RESYNC_SECONDS = 2.0
_STATIC_COLUMNS = (AgentProfile.user_id, AgentProfile.skills, AgentProfile.languages, AgentProfile.groups,
                   AgentProfile.vip, AgentProfile.attributes, AgentProfile.capacities, AgentProfile.version)
_DYNAMIC_COLUMNS = (AgentProfile.user_id, AgentProfile.presence, AgentProfile.version, AgentProfile.last_offered_at)


def epoch(dt: datetime | None) -> float:
    return dt.timestamp() if dt is not None else 0.0


class AgentCache:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.agents: dict[str, policies.AgentView] = {}  # every profile of the tenant, offline ones included
        self.versions: dict[str, int] = {}
        self.matcher = policies.Matcher()
        self.dirty: set[str] = set()
        self.synced_at: float | None = None  # time.monotonic() of the last full read; None: read at next pass
        self.config: tuple[Any, Any] | None = None  # (stamp of the queue and workflow tables, their views)
        self._keys: list[tuple[float, float, str]] = []  # idle order: (last offer, occupancy, id)
        self._key_of: dict[str, tuple[float, float, str]] = {}

    # --- what the pass reads ---------------------------------------------------------------------------

    def idle_order(self) -> list[str]:
        """Agents available with room for something: longest idle first, then least occupied, then id."""
        return [key[2] for key in self._keys]

    def idle_since(self, agent_id: str, default: float) -> float:
        """The last offer an agent had when it was last placed in the idle order (before a pass changed it)."""
        key = self._key_of.get(agent_id)
        return key[0] if key is not None else default

    # --- keeping it current --------------------------------------------------------------------------------

    def mark(self, *agent_ids: str | None) -> None:
        """Re-read these agents at the next pass (after a write that changed their presence, profile or load)."""
        self.dirty.update(a for a in agent_ids if a)

    def invalidate(self) -> None:
        self.synced_at = None

    def rekey(self, agent_id: str) -> None:
        """Move one agent to its place in the idle order (or out of it) after its state changed."""
        old = self._key_of.pop(agent_id, None)
        if old is not None:
            index = bisect_left(self._keys, old)
            if index < len(self._keys) and self._keys[index] == old:
                del self._keys[index]
        agent = self.agents.get(agent_id)
        if agent is not None and agent.presence == "available" and agent.has_room():
            key = (agent.last_offered_at, agent.occupancy(), agent_id)
            insort(self._keys, key)
            self._key_of[agent_id] = key

    async def refresh(self, session: AsyncSession, *, full_due: bool) -> None:
        """Bring the cache up to date before a pass: everything when never read or ``full_due`` and the resync
        interval has passed, else only the agents marked dirty."""
        now = time.monotonic()
        if self.synced_at is None or (full_due and now - self.synced_at >= RESYNC_SECONDS):
            self.dirty.clear()  # cleared before reading: a mark that arrives meanwhile survives
            await self._read(session, None)
            self.synced_at = now
        elif self.dirty:
            ids, self.dirty = sorted(self.dirty), set()
            await self._read(session, ids)

    async def reload(self, session: AsyncSession, agent_ids: Iterable[str]) -> None:
        ids = sorted(set(agent_ids))
        if ids:
            await self._read(session, ids)

    async def _read(self, session: AsyncSession, ids: list[str] | None) -> None:
        query = select(*_DYNAMIC_COLUMNS).where(AgentProfile.tenant_id == self.tenant_id)
        if ids is not None:
            query = query.where(AgentProfile.user_id.in_(ids))
        dynamic = (await session.execute(query)).all()
        stale = [user_id for user_id, _p, version, _l in dynamic if self.versions.get(user_id) != version]
        static: dict[str, Any] = {}
        for start in range(0, len(stale), 500):
            for row in (await session.execute(select(*_STATIC_COLUMNS).where(
                    AgentProfile.user_id.in_(stale[start:start + 500])))).all():
                static[row.user_id] = row
        loads = await service.agent_loads(session=session, tenant_id=self.tenant_id, agent_ids=ids)
        changed: list[policies.AgentView] = []
        seen: set[str] = set()
        for user_id, presence, version, last_offered in dynamic:
            row = static.get(user_id)
            agent = self.agents.get(user_id)
            if self.versions.get(user_id) != version:
                if row is None or row.version != version:  # changed between the two reads: next pass
                    self.dirty.add(user_id)
                    continue
                subject, capacities = service.agent_subject(row), service.capacities_of(row.capacities)
                if agent is None:
                    agent = self.agents[user_id] = policies.AgentView(user_id, subject, presence, capacities, {})
                else:
                    agent.attributes, agent.capacities = subject, capacities
                self.versions[user_id] = version
                changed.append(agent)
            assert agent is not None
            seen.add(user_id)
            agent.presence = presence
            agent.load = dict(loads.get(user_id, {}))
            agent.last_offered_at = epoch(last_offered)
            self.rekey(user_id)
        gone = [user_id for user_id in (ids if ids is not None else list(self.agents))
                if user_id not in seen and user_id in self.agents and user_id not in self.dirty]
        for user_id in gone:
            del self.agents[user_id]
            self.versions.pop(user_id, None)
            self.rekey(user_id)
        if changed or gone:
            self.matcher.update_agents(changed, gone, self.agents)


# One cache per engine (node) and tenant; an engine that is disposed and collected takes its caches along.
_CACHES: weakref.WeakKeyDictionary[Any, dict[str, AgentCache]] = weakref.WeakKeyDictionary()


def cache_for(session: AsyncSession, tenant_id: str) -> AgentCache:
    bind = session.bind
    key = getattr(bind, "sync_engine", bind)
    caches = _CACHES.get(key)
    if caches is None:
        caches = _CACHES[key] = {}
    found = caches.get(tenant_id)
    if found is None:
        if len(caches) > 10_000:
            caches.clear()
        found = caches[tenant_id] = AgentCache(tenant_id)
    return found


def caches_of(engine: Any) -> dict[str, AgentCache]:
    """The caches of one engine (for the routing loop, which marks agents dirty when events arrive)."""
    key = getattr(engine, "sync_engine", engine)
    caches = _CACHES.get(key)
    if caches is None:
        caches = _CACHES[key] = {}
    return caches
