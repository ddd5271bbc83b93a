"""A kefu node whose chat messages skip the database: the ceiling of everything but storage.

``bench/chat_roundtrip.py --phases storage-free`` starts this instead of ``kefu serve``. It is ``kefu serve``
with one change: the group committer answers widget messages and agent replies without a transaction. Each
gets a stored-looking message, and kefu's own writer code (``conversations.actions.start_conversation_row`` and
``_apply_message``) updates its conversation, kept in memory as a ``ConversationRow``, and emits the batch's
events, which are published on the node's bus. So sockets, acknowledgements, the hub's fan-out and the widget
see the same frames as with storage (``conversation.created`` on a first message, ``message.created``,
``conversation.updated`` when the first agent's answer assigns it). What it leaves out is storage: the group
committer's reads and row building, SQLite, the outbox, and what only the database path does (the routing task
of a new conversation and the routing passes over it, the task's sync on the first answer: one-offs of the
bench's warm-up). Comparing the two phases in one run shows how much of the node's time per message storage
takes, and what the node could reach if storage cost nothing on the event loop's thread.

Every other use of the committer runs as usual. It replaces ``GroupCommitter._run_straight``, so it follows
that class's changes. A measurement tool only: nothing of kefu imports it.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.channels.actions import VisitorPost, do_post_visitor_messages  # noqa: E402
from kefu.conversations import actions as conversation_actions  # noqa: E402
from kefu.conversations.actions import AgentPost, MessagePost, do_post_agent_messages  # noqa: E402
from kefu.conversations.schemas import MessageRead  # noqa: E402
from kefu.conversations.service import ConversationRow  # noqa: E402
from kefu.core.clock import utcnow  # noqa: E402
from kefu.core.errors import NotFound  # noqa: E402
from kefu.core.ids import new_id  # noqa: E402
from kefu.events.group_commit import GroupCommitter  # noqa: E402
from kefu.events.types import DomainEvent  # noqa: E402
from kefu.events.uow import UnitOfWork  # noqa: E402

_FAKED = {do_post_visitor_messages, do_post_agent_messages}
# Above any real outbox id of the run (the hub drops an event id a socket has already seen).
_event_ids = itertools.count(1 << 40)
_by_contact: dict[tuple[str, str], ConversationRow] = {}
_by_id: dict[str, ConversationRow] = {}


def _post(uow: UnitOfWork, item: Any) -> MessageRead | None:
    """Append ``item`` to its conversation in memory; its events go to ``uow`` as kefu's own writer emits them."""
    if isinstance(item, VisitorPost):
        claims = item.claims
        conversation = _by_contact.get((claims.inbox_id, claims.contact_id))
        if conversation is None:
            conversation = conversation_actions.start_conversation_row(
                uow, tenant_id=claims.tenant_id, inbox_id=claims.inbox_id, contact_id=claims.contact_id,
                channel="webchat", locale=item.locale, owner_kind="queue")
            _by_contact[(claims.inbox_id, claims.contact_id)] = _by_id[conversation.id] = conversation
        post = MessagePost(conversation=conversation, sender_kind="customer", sender_id=conversation.contact_id,
                           body=item.body, client_message_id=item.client_message_id)
    else:
        assert isinstance(item, AgentPost)
        conversation = _by_id.get(item.conversation_id)  # type: ignore[assignment]
        if conversation is None or conversation.tenant_id != item.tenant_id:
            return None
        post = MessagePost(conversation=conversation, sender_kind=item.sender_kind, sender_id=item.sender_id,
                           body=item.body, client_message_id=item.client_message_id)
    now = utcnow()
    message = MessageRead.model_validate({  # the row do_post_messages stores
        "id": new_id("msg"), "tenant_id": conversation.tenant_id, "conversation_id": conversation.id,
        "sender_kind": post.sender_kind, "sender_id": post.sender_id, "body": post.body,
        "content_type": post.content_type, "attachments": [], "private": post.private,
        "client_message_id": post.client_message_id, "delivery_status": "sent", "created_at": now})
    conversation_actions._apply_message(uow, conversation, post, message, now)  # noqa: SLF001
    return message


_run_straight = GroupCommitter._run_straight


async def _storage_free(self: GroupCommitter, batch: list[Any]) -> list[Any] | None:
    if any(job.batch_fn not in _FAKED for job in batch):
        return await _run_straight(self, batch)
    uow = UnitOfWork(None, None)  # type: ignore[arg-type]  (only its emitted rows are used)
    outcomes: list[Any] = []
    for job in batch:
        message = _post(uow, job.item)
        outcomes.append(NotFound("conversation_not_found") if message is None else (message, True))
    await self._relay.bus.publish([DomainEvent(id=next(_event_ids), **row)
                                   for row in uow._rows])  # noqa: SLF001
    return outcomes


GroupCommitter._run_straight = _storage_free  # type: ignore[method-assign]

if __name__ == "__main__":
    from kefu.cli import app

    app()
