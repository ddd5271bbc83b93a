"""REST endpoints of the bot domain: flows per tenant, bot settings per inbox, what the bot did in a conversation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from kefu.api.deps import IfMatch, Scoped, UoWDep, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses, request_locale
from kefu.bot import actions as bot_actions
from kefu.bot import service as bot_service
from kefu.bot.schemas import (
    BotConversationRead,
    BotSettingsRead,
    BotSettingsUpdate,
    FlowCreate,
    FlowList,
    FlowRead,
    FlowUpdate,
    HandoffRead,
)
from kefu.core.errors import NotFound

router = APIRouter(tags=["bot"])
Reader = Scoped("bot:read")
Writer = Scoped("bot:write")
FlowName = Annotated[str, Path(min_length=1, max_length=64, description="A flow's name, e.g. `track_order`")]
InboxId = Annotated[str, Path(max_length=40)]
ConversationId = Annotated[str, Path(max_length=40)]


@router.get("/api/v1/bot/flows", response_model=FlowList, summary="The bot's flows in force for this tenant",
            responses=error_responses(*AUTH_ERRORS))
async def list_flows(actor: Reader, uow: UoWDep) -> FlowList:
    flows = await bot_service.list_flows(session=uow.session, tenant_id=actor.tenant_id)
    return FlowList(data=flows, skills=bot_service.known_skills())


@router.post("/api/v1/bot/flows", status_code=201, response_model=FlowRead,
             summary="Add a flow of the tenant's own (YAML; every problem is listed in details.problems)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "bot_flow_exists", "bot_flow_invalid"))
async def create_flow(body: FlowCreate, actor: Writer, uow: UoWDep, response: Response) -> FlowRead:
    row = await bot_actions.do_create_flow(uow, tenant_id=actor.tenant_id, source=body.source, actor_id=actor.user_id)
    flow, row = await bot_service.access_flow(session=uow.session, tenant_id=actor.tenant_id, name=row.name)
    await uow.commit()
    set_etag(response, row.version if row else 0)
    return bot_service.flow_read(flow, row)


@router.get("/api/v1/bot/flows/{flow_name}", response_model=FlowRead, summary="One flow with its YAML",
            responses=error_responses(*AUTH_ERRORS, "bot_flow_not_found"))
async def get_flow(flow_name: FlowName, actor: Reader, uow: UoWDep, response: Response) -> FlowRead:
    flow, row = await bot_service.access_flow(session=uow.session, tenant_id=actor.tenant_id, name=flow_name)
    set_etag(response, row.version if row else 0)
    return bot_service.flow_read(flow, row)


@router.put("/api/v1/bot/flows/{flow_name}", response_model=FlowRead,
            summary="Replace a flow's YAML (If-Match; a built-in flow gets the tenant's own version)",
            responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "bot_flow_not_found", "bot_flow_invalid",
                                      "version_conflict", "invalid_if_match"))
async def update_flow(flow_name: FlowName, body: FlowUpdate, actor: Writer, uow: UoWDep, expected: IfMatch,
                      response: Response) -> FlowRead:
    _, row = await bot_service.access_flow(session=uow.session, tenant_id=actor.tenant_id, name=flow_name)
    await bot_actions.do_update_flow(uow, tenant_id=actor.tenant_id, name=flow_name, row=row, source=body.source,
                                     actor_id=actor.user_id, expected_version=expected)
    flow, row = await bot_service.access_flow(session=uow.session, tenant_id=actor.tenant_id, name=flow_name)
    await uow.commit()
    set_etag(response, row.version if row else 0)
    return bot_service.flow_read(flow, row)


@router.delete("/api/v1/bot/flows/{flow_name}", status_code=204,
               summary="Drop the tenant's version of a flow (a built-in flow comes back)",
               responses=error_responses(*AUTH_ERRORS, "bot_flow_not_found"))
async def delete_flow(flow_name: FlowName, actor: Writer, uow: UoWDep) -> Response:
    _, row = await bot_service.access_flow(session=uow.session, tenant_id=actor.tenant_id, name=flow_name)
    await bot_actions.do_delete_flow(uow, tenant_id=actor.tenant_id, name=flow_name, row=row)
    await uow.commit()
    return Response(status_code=204)


@router.get("/api/v1/bot/inboxes/{bot_inbox_id}/settings", response_model=BotSettingsRead,
            summary="Whether the bot answers first in an inbox, and its handoff thresholds",
            responses=error_responses(*AUTH_ERRORS, "inbox_not_found"))
async def get_settings(bot_inbox_id: InboxId, actor: Reader, uow: UoWDep, response: Response) -> BotSettingsRead:
    inbox_id, row = await bot_service.access_settings(session=uow.session, tenant_id=actor.tenant_id,
                                                      inbox_id=bot_inbox_id)
    read = bot_service.settings_read(inbox_id, row)
    set_etag(response, read.version)
    return read


@router.put("/api/v1/bot/inboxes/{bot_inbox_id}/settings", response_model=BotSettingsRead,
            summary="Switch the bot on or off for an inbox and tune its handoff (If-Match)",
            responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "inbox_not_found", "version_conflict",
                                      "invalid_if_match"))
async def put_settings(bot_inbox_id: InboxId, body: BotSettingsUpdate, actor: Writer, uow: UoWDep,
                       expected: IfMatch, response: Response) -> BotSettingsRead:
    inbox_id, row = await bot_service.access_settings(session=uow.session, tenant_id=actor.tenant_id,
                                                      inbox_id=bot_inbox_id)
    row = await bot_actions.do_update_settings(uow, tenant_id=actor.tenant_id, inbox_id=inbox_id, row=row, data=body,
                                               expected_version=expected)
    read = bot_service.settings_read(inbox_id, row)
    await uow.commit()
    set_etag(response, read.version)
    return read


@router.get("/api/v1/bot/conversations/{bot_conversation_id}", response_model=BotConversationRead,
            summary="The bot's dialogue state in a conversation and its handoffs",
            responses=error_responses(*AUTH_ERRORS, "conversation_not_found"))
async def get_bot_conversation(bot_conversation_id: ConversationId, actor: Reader, uow: UoWDep,
                               request: Request) -> BotConversationRead:
    return await bot_service.access_bot_conversation(session=uow.session, tenant_id=actor.tenant_id,
                                                     conversation_id=bot_conversation_id,
                                                     lang=request_locale(request))


@router.get("/api/v1/bot/conversations/{bot_conversation_id}/handoff", response_model=HandoffRead,
            summary="The latest handoff of a conversation: reason, routing attributes and the agent's summary",
            responses=error_responses(*AUTH_ERRORS, "conversation_not_found", "bot_handoff_not_found"))
async def get_handoff(bot_conversation_id: ConversationId, actor: Reader, uow: UoWDep) -> HandoffRead:
    view = await bot_service.access_bot_conversation(session=uow.session, tenant_id=actor.tenant_id,
                                                     conversation_id=bot_conversation_id)
    if not view.handoffs:
        raise NotFound("bot_handoff_not_found")
    return view.handoffs[-1]
