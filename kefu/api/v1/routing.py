"""REST routes of the routing engine: agents' attributes and presence, queues, workflows, tasks, offers, stats."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from kefu.api.deps import IfMatch, RuntimeDep, Scoped, UoWDep, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.auth.schemas import Principal
from kefu.core.errors import Forbidden
from kefu.routing import actions as routing_actions
from kefu.routing import service as routing_service
from kefu.routing.schemas import (
    AgentProfileRead,
    AgentProfileUpdate,
    ExpressionCheck,
    ExpressionCheckRead,
    OfferRead,
    PresenceUpdate,
    QueueCreate,
    QueueRead,
    QueueStats,
    QueueUpdate,
    StatsRead,
    TaskRead,
    TaskTransfer,
    TaskUpdate,
    WorkflowCreate,
    WorkflowRead,
    WorkflowUpdate,
)

router = APIRouter(prefix="/api/v1/routing", tags=["routing"])
Reader = Scoped("routing:read")
Responder = Scoped("routing:respond")
Writer = Scoped("routing:write")
AgentId = Annotated[str, Path(max_length=40, description="The agent's user id")]
QueueId = Annotated[str, Path(max_length=40)]
WorkflowId = Annotated[str, Path(max_length=40)]
TaskId = Annotated[str, Path(max_length=40)]
OfferId = Annotated[str, Path(max_length=40)]
WindowHours = Annotated[float, Query(gt=0, le=24 * 31, description="Window of the answered/abandoned figures")]


def _forbidden(actor: Principal, scope: str) -> Forbidden:
    return Forbidden("insufficient_scope" if actor.kind == "api_key" else "forbidden", scope=scope)


# --- agents ------------------------------------------------------------------------------------------------

@router.get("/agents", summary="List agent profiles with their presence and current load",
            response_model=Page[AgentProfileRead], responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_agents(actor: Reader, uow: UoWDep,
                      presence: Literal["available", "busy", "away", "offline"] | None = None,
                      limit: Limit = 50, cursor: Cursor = None) -> Page[AgentProfileRead]:
    rows = await routing_service.list_agents(session=uow.session, tenant_id=actor.tenant_id,
                                             after_id=decode_cursor(cursor), limit=limit + 1, presence=presence)
    reads = await routing_service.agent_reads(session=uow.session, tenant_id=actor.tenant_id, profiles=rows)
    return page_of(reads, limit, id_of=lambda a: a.agent_id)


@router.get("/agents/{agent_id}", summary="Get an agent's routing profile", response_model=AgentProfileRead,
            responses=error_responses(*AUTH_ERRORS, "agent_not_found"))
async def get_agent(agent_id: AgentId, actor: Reader, uow: UoWDep, response: Response) -> AgentProfileRead:
    profile = await routing_service.access_agent(session=uow.session, tenant_id=actor.tenant_id, agent_id=agent_id)
    set_etag(response, profile.version)
    return (await routing_service.agent_reads(session=uow.session, tenant_id=actor.tenant_id, profiles=[profile]))[0]


@router.put("/agents/{agent_id}", summary="Create or update an agent's skills, languages, groups and capacities",
            response_model=AgentProfileRead,
            responses={201: {"description": "Profile created", "model": AgentProfileRead},
                       **error_responses(*AUTH_ERRORS, *BODY_ERRORS, "agent_not_found", "version_conflict",
                                         "invalid_if_match")})
async def put_agent(agent_id: AgentId, body: AgentProfileUpdate, actor: Writer, uow: UoWDep, expected: IfMatch,
                    response: Response) -> AgentProfileRead:
    profile, created = await routing_actions.do_upsert_agent(uow, tenant_id=actor.tenant_id, agent_id=agent_id,
                                                             data=body, expected_version=expected)
    read = (await routing_service.agent_reads(session=uow.session, tenant_id=actor.tenant_id, profiles=[profile]))[0]
    await uow.commit()
    if created:
        response.status_code = 201
    set_etag(response, read.version)
    return read


@router.put("/agents/{agent_id}/presence", summary="Set presence (agents their own; supervisors anyone's)",
            response_model=AgentProfileRead,
            responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "agent_not_found"))
async def put_presence(agent_id: AgentId, body: PresenceUpdate, actor: Responder, uow: UoWDep) -> AgentProfileRead:
    profile = await routing_service.access_agent(session=uow.session, tenant_id=actor.tenant_id, agent_id=agent_id)
    if profile.user_id != actor.user_id and not actor.can("routing:write"):
        raise _forbidden(actor, "routing:write")
    await routing_actions.do_set_presence(uow, profile=profile, presence=body.presence, reason=body.reason,
                                          note=None if actor.user_id == profile.user_id else f"by {actor.id}")
    read = (await routing_service.agent_reads(session=uow.session, tenant_id=actor.tenant_id, profiles=[profile]))[0]
    await uow.commit()
    return read


# --- queues ------------------------------------------------------------------------------------------------

@router.post("/queues", status_code=201, summary="Create a queue with its target-agents expression",
             response_model=QueueRead, responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "invalid_expression"))
async def create_queue(body: QueueCreate, actor: Writer, uow: UoWDep, response: Response) -> QueueRead:
    queue = await routing_actions.do_create_queue(uow, tenant_id=actor.tenant_id, data=body)
    read = routing_service.queue_read(queue)
    await uow.commit()
    set_etag(response, read.version)
    return read


@router.get("/queues", summary="List queues", response_model=Page[QueueRead],
            responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_queues(actor: Reader, uow: UoWDep, limit: Limit = 50, cursor: Cursor = None) -> Page[QueueRead]:
    rows = await routing_service.list_queues(session=uow.session, tenant_id=actor.tenant_id,
                                             after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([routing_service.queue_read(q) for q in rows], limit)


@router.get("/queues/{queue_id}", summary="Get a queue", response_model=QueueRead,
            responses=error_responses(*AUTH_ERRORS, "queue_not_found"))
async def get_queue(queue_id: QueueId, actor: Reader, uow: UoWDep, response: Response) -> QueueRead:
    queue = await routing_service.access_queue(session=uow.session, tenant_id=actor.tenant_id, queue_id=queue_id)
    set_etag(response, queue.version)
    return routing_service.queue_read(queue)


@router.patch("/queues/{queue_id}", summary="Change a queue (If-Match)", response_model=QueueRead,
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "queue_not_found", "invalid_expression",
                                        "version_conflict", "invalid_if_match"))
async def update_queue(queue_id: QueueId, body: QueueUpdate, actor: Writer, uow: UoWDep, expected: IfMatch,
                       response: Response) -> QueueRead:
    queue = await routing_service.access_queue(session=uow.session, tenant_id=actor.tenant_id, queue_id=queue_id)
    await routing_actions.do_update_queue(uow, queue=queue, data=body, expected_version=expected)
    read = routing_service.queue_read(queue)
    await uow.commit()
    set_etag(response, read.version)
    return read


@router.get("/queues/{queue_id}/stats", summary="Live statistics of one queue", response_model=QueueStats,
            responses=error_responses(*AUTH_ERRORS, "queue_not_found"))
async def get_queue_stats(queue_id: QueueId, actor: Reader, uow: UoWDep, window_hours: WindowHours = 24.0) -> QueueStats:
    queue = await routing_service.access_queue(session=uow.session, tenant_id=actor.tenant_id, queue_id=queue_id)
    stats = await routing_service.queue_stats(session=uow.session, tenant_id=actor.tenant_id,
                                              window_hours=window_hours, queue_ids=[queue.id])
    return stats.queues[0]


@router.get("/stats", summary="Live statistics of every queue (also pushed as routing.queue.stats events)",
            response_model=StatsRead, responses=error_responses(*AUTH_ERRORS))
async def get_stats(actor: Reader, uow: UoWDep, window_hours: WindowHours = 24.0) -> StatsRead:
    return await routing_service.queue_stats(session=uow.session, tenant_id=actor.tenant_id, window_hours=window_hours)


# --- workflows ---------------------------------------------------------------------------------------------

_WORKFLOW_ERRORS = ("invalid_expression", "queue_not_found", "workflow_not_found", "workflow_empty", "workflow_cycle",
                    "invalid_target")


@router.post("/workflows", status_code=201, summary="Create a workflow (filters with ordered targets)",
             response_model=WorkflowRead, responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, *_WORKFLOW_ERRORS))
async def create_workflow(body: WorkflowCreate, actor: Writer, uow: UoWDep, response: Response) -> WorkflowRead:
    workflow = await routing_actions.do_create_workflow(uow, tenant_id=actor.tenant_id, data=body)
    read = routing_service.workflow_read(workflow)
    await uow.commit()
    set_etag(response, read.version)
    return read


@router.get("/workflows", summary="List workflows", response_model=Page[WorkflowRead],
            responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_workflows(actor: Reader, uow: UoWDep, limit: Limit = 50, cursor: Cursor = None) -> Page[WorkflowRead]:
    rows = await routing_service.list_workflows(session=uow.session, tenant_id=actor.tenant_id,
                                                after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([routing_service.workflow_read(w) for w in rows], limit)


@router.get("/workflows/{workflow_id}", summary="Get a workflow", response_model=WorkflowRead,
            responses=error_responses(*AUTH_ERRORS, "workflow_not_found"))
async def get_workflow(workflow_id: WorkflowId, actor: Reader, uow: UoWDep, response: Response) -> WorkflowRead:
    workflow = await routing_service.access_workflow(session=uow.session, tenant_id=actor.tenant_id,
                                                     workflow_id=workflow_id)
    set_etag(response, workflow.version)
    return routing_service.workflow_read(workflow)


@router.put("/workflows/{workflow_id}", summary="Replace a workflow (If-Match)", response_model=WorkflowRead,
            responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, *_WORKFLOW_ERRORS, "version_conflict",
                                      "invalid_if_match"))
async def put_workflow(workflow_id: WorkflowId, body: WorkflowUpdate, actor: Writer, uow: UoWDep, expected: IfMatch,
                       response: Response) -> WorkflowRead:
    workflow = await routing_service.access_workflow(session=uow.session, tenant_id=actor.tenant_id,
                                                     workflow_id=workflow_id)
    await routing_actions.do_update_workflow(uow, workflow=workflow, data=body, expected_version=expected)
    read = routing_service.workflow_read(workflow)
    await uow.commit()
    set_etag(response, read.version)
    return read


@router.post("/expressions/validate", summary="Check an expression; errors give the character position",
             response_model=ExpressionCheckRead,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "invalid_expression"))
async def validate_expression(body: ExpressionCheck, actor: Reader) -> ExpressionCheckRead:
    parsed = routing_actions.check_expression(body.expression, "expression", required=True)
    assert parsed is not None
    return ExpressionCheckRead(valid=True, task_attributes=[".".join(p) for p in parsed.task_paths])


# --- tasks and offers --------------------------------------------------------------------------------------

TaskStatus = Literal["waiting", "offered", "assigned", "wrapping", "completed", "canceled"]


@router.get("/tasks", summary="List tasks (filters: status, queue, conversation)", response_model=Page[TaskRead],
            responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_tasks(actor: Reader, uow: UoWDep, status: TaskStatus | None = None,
                     queue_id: Annotated[str | None, Query(max_length=40)] = None,
                     conversation_id: Annotated[str | None, Query(max_length=40)] = None,
                     limit: Limit = 50, cursor: Cursor = None) -> Page[TaskRead]:
    rows = await routing_service.list_tasks(session=uow.session, tenant_id=actor.tenant_id, status=status,
                                            queue_id=queue_id, conversation_id=conversation_id,
                                            after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([routing_service.task_read(t) for t in rows], limit)


@router.get("/tasks/{task_id}", summary="Get a task", response_model=TaskRead,
            responses=error_responses(*AUTH_ERRORS, "task_not_found"))
async def get_task(task_id: TaskId, actor: Reader, uow: UoWDep) -> TaskRead:
    task = await routing_service.access_task(session=uow.session, tenant_id=actor.tenant_id, task_id=task_id)
    return routing_service.task_read(task)


@router.patch("/tasks/{task_id}", summary="Add attributes to a live task or change its priority (If-Match)",
              response_model=TaskRead,
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "task_not_found", "task_not_active",
                                        "version_conflict", "invalid_if_match"))
async def update_task(task_id: TaskId, body: TaskUpdate, actor: Writer, uow: UoWDep, expected: IfMatch) -> TaskRead:
    task = await routing_service.access_task(session=uow.session, tenant_id=actor.tenant_id, task_id=task_id)
    await routing_actions.do_update_task(uow, task=task, attributes=body.attributes, priority=body.priority,
                                         expected_version=expected)
    read = routing_service.task_read(task)
    await uow.commit()
    return read


@router.post("/tasks/{task_id}/transfer", summary="Transfer a task to another queue or to one agent",
             response_model=TaskRead,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "task_not_found", "queue_not_found",
                                       "agent_not_found", "task_not_active", "invalid_transfer",
                                       "version_conflict"))
async def transfer_task(task_id: TaskId, body: TaskTransfer, actor: Responder, uow: UoWDep,
                        runtime: RuntimeDep) -> TaskRead:
    task = await routing_service.access_task(session=uow.session, tenant_id=actor.tenant_id, task_id=task_id)
    if not actor.can("routing:write") and task.agent_id != actor.user_id:
        raise _forbidden(actor, "routing:write")  # agents transfer only what they hold
    await routing_actions.do_transfer_task(uow, task=task, queue_id=body.queue_id, agent_id=body.agent_id,
                                           default_locale=runtime.settings.default_locale)
    read = routing_service.task_read(task)
    await uow.commit()
    return read


@router.get("/offers", summary="List offers (agents see their own unless they may manage routing)",
            response_model=Page[OfferRead], responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_offers(actor: Responder, uow: UoWDep,
                      status: Literal["pending", "accepted", "rejected", "timed_out", "canceled"] | None = None,
                      agent_id: Annotated[str | None, Query(max_length=40, description="A user id or `me`")] = None,
                      task_id: Annotated[str | None, Query(max_length=40)] = None,
                      limit: Limit = 50, cursor: Cursor = None) -> Page[OfferRead]:
    if agent_id == "me" or (agent_id is None and not actor.can("routing:write")):
        agent_id = actor.user_id or "-"
    elif agent_id != actor.user_id and not actor.can("routing:write"):
        raise _forbidden(actor, "routing:write")
    rows = await routing_service.list_offers(session=uow.session, tenant_id=actor.tenant_id, agent_id=agent_id,
                                             status=status, task_id=task_id, after_id=decode_cursor(cursor),
                                             limit=limit + 1)
    return page_of([routing_service.offer_read(o) for o in rows], limit)


_OFFER_ERRORS = error_responses(*AUTH_ERRORS, "offer_not_found", "offer_not_yours", "offer_expired",
                                "offer_not_pending")


@router.post("/offers/{offer_id}/accept", summary="Accept an offer: the conversation is assigned to you",
             response_model=TaskRead, responses=_OFFER_ERRORS)
async def accept_offer(offer_id: OfferId, actor: Responder, uow: UoWDep, runtime: RuntimeDep) -> TaskRead:
    offer = await routing_service.access_offer(session=uow.session, tenant_id=actor.tenant_id, offer_id=offer_id)
    task = await routing_actions.do_accept_offer(uow, offer=offer, agent_id=actor.user_id,
                                                 default_locale=runtime.settings.default_locale)
    read = routing_service.task_read(task)
    await uow.commit()
    return read


@router.post("/offers/{offer_id}/reject", summary="Reject an offer: the task is offered to someone else",
             response_model=TaskRead, responses=_OFFER_ERRORS)
async def reject_offer(offer_id: OfferId, actor: Responder, uow: UoWDep) -> TaskRead:
    offer = await routing_service.access_offer(session=uow.session, tenant_id=actor.tenant_id, offer_id=offer_id)
    task = await routing_actions.do_reject_offer(uow, offer=offer, agent_id=actor.user_id)
    assert task is not None
    read = routing_service.task_read(task)
    await uow.commit()
    return read
