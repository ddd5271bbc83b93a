"""A kefu node whose chat messages skip the database: the ceiling of everything but storage.

``bench/chat_roundtrip.py --phases storage-free`` starts this instead of ``kefu serve``. It is ``kefu serve``
with one change: the group committer answers widget messages and agent replies without a transaction. Each
gets a stored-looking message (id, timestamps, the same ``message.created`` payload the real batch emits) and
its event is published on the node's bus, so sockets, acknowledgements, the hub's fan-out to the assigned agent
and the widget see the same frames as with storage. What it leaves out is the group committer's work: reads,
row building, SQLite, the outbox. Comparing the two phases in one run shows how much of the node's time per
message storage takes, and what the node could reach if storage cost nothing on the event loop's thread.

Conversations are kept in memory: one per widget contact, assigned to the first agent who answers (as the
real ``_apply_message`` does). Also left out, besides storage: what a conversation's start sets off (its
``conversation.created`` and ``conversation.updated`` events, the routing task and the routing passes over it,
the task's sync on the first answer), one-offs of the warm-up in the bench. Every other use of the committer
runs as usual. It replaces ``GroupCommitter._run_straight``, so it follows that class's changes. A measurement
tool only: nothing of kefu imports it.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.channels.actions import VisitorPost, do_post_visitor_messages  # noqa: E402
from kefu.conversations.actions import AgentPost, do_post_agent_messages  # noqa: E402
from kefu.conversations.policies import preview  # noqa: E402
from kefu.conversations.schemas import MessageRead  # noqa: E402
from kefu.core.clock import utcnow  # noqa: E402
from kefu.core.ids import new_id  # noqa: E402
from kefu.events import types as ev  # noqa: E402
from kefu.events.group_commit import GroupCommitter  # noqa: E402
from kefu.events.types import DomainEvent  # noqa: E402

_FAKED = {do_post_visitor_messages, do_post_agent_messages}
# Above any real outbox id of the run (the hub drops an event id a socket has already seen).
_event_ids = itertools.count(1 << 40)


class _Conversation:
    __slots__ = ("id", "tenant_id", "inbox_id", "contact_id", "assignee_id", "version")

    def __init__(self, tenant_id: str, inbox_id: str, contact_id: str) -> None:
        self.id, self.tenant_id, self.inbox_id, self.contact_id = new_id("cnv"), tenant_id, inbox_id, contact_id
        self.assignee_id: str | None = None
        self.version = 1


_by_contact: dict[tuple[str, str], _Conversation] = {}
_by_id: dict[str, _Conversation] = {}


def _post(item: Any) -> tuple[MessageRead, DomainEvent] | None:
    if isinstance(item, VisitorPost):
        claims = item.claims
        conversation = _by_contact.get((claims.inbox_id, claims.contact_id))
        if conversation is None:
            conversation = _Conversation(claims.tenant_id, claims.inbox_id, claims.contact_id)
            _by_contact[(claims.inbox_id, claims.contact_id)] = conversation
            _by_id[conversation.id] = conversation
        sender_kind, sender_id = "customer", claims.contact_id
    else:
        assert isinstance(item, AgentPost)
        conversation = _by_id.get(item.conversation_id)
        if conversation is None or conversation.tenant_id != item.tenant_id:
            return None
        sender_kind, sender_id = item.sender_kind, item.sender_id
        if sender_kind == "agent" and conversation.assignee_id is None:
            conversation.assignee_id = sender_id
    now = utcnow()
    conversation.version += 1
    message = MessageRead.model_validate({
        "id": new_id("msg"), "tenant_id": conversation.tenant_id, "conversation_id": conversation.id,
        "sender_kind": sender_kind, "sender_id": sender_id, "body": item.body, "content_type": "text",
        "attachments": [], "private": False, "client_message_id": item.client_message_id,
        "delivery_status": "sent", "created_at": now})
    event = DomainEvent(
        id=next(_event_ids), type=ev.MESSAGE_CREATED, tenant_id=conversation.tenant_id, created_at=now,
        conversation_id=conversation.id, contact_id=conversation.contact_id,
        data={"message": message.json_payload(),
              "conversation": {"id": conversation.id, "status": "open", "assignee_id": conversation.assignee_id,
                               "contact_id": conversation.contact_id, "inbox_id": conversation.inbox_id,
                               "owner_kind": "agent" if conversation.assignee_id else "queue",
                               "last_message_preview": preview(item.body, []), "version": conversation.version}})
    return message, event


_run_straight = GroupCommitter._run_straight


async def _storage_free(self: GroupCommitter, batch: list[Any]) -> list[Any] | None:
    if any(job.batch_fn not in _FAKED for job in batch):
        return await _run_straight(self, batch)
    outcomes: list[Any] = []
    events: list[DomainEvent] = []
    for job in batch:
        posted = _post(job.item)
        if posted is None:
            from kefu.core.errors import NotFound
            outcomes.append(NotFound("conversation_not_found"))
            continue
        outcomes.append((posted[0], True))
        events.append(posted[1])
    await self._relay.bus.publish(events)
    return outcomes


GroupCommitter._run_straight = _storage_free  # type: ignore[method-assign]

if __name__ == "__main__":
    from kefu.cli import app

    app()
