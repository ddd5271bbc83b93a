"""Shapes of the routing API: agent profiles and presence, queues, workflows, tasks, offers, statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kefu.core.schemas import ReadModel

Presence = Literal["available", "busy", "away", "offline"]
Name = Field(min_length=1, max_length=100)
ExpressionText = Field(default=None, max_length=2000)
Label = str


class Capacities(BaseModel):
    """Concurrent tasks per channel; 0 means "does not take this channel"."""

    voice: int = Field(default=1, ge=0, le=100)
    chat: int = Field(default=5, ge=0, le=100)
    email: int = Field(default=10, ge=0, le=100)


class AgentProfileUpdate(BaseModel):
    """Routing attributes of an agent (absent fields keep their value; a new profile starts from defaults)."""

    skills: dict[str, int] | None = Field(default=None, max_length=100)
    languages: list[str] | None = Field(default=None, max_length=20)
    groups: list[str] | None = Field(default=None, max_length=50)
    vip: bool | None = None
    attributes: dict[str, Any] | None = None
    capacities: Capacities | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "skills": {"returns": 3, "large_appliance": 2}, "languages": ["zh", "en"], "groups": ["售后"],
        "vip": True, "capacities": {"voice": 1, "chat": 5, "email": 10}}]})

    @field_validator("skills")
    @classmethod
    def _skill_levels(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None:
            for name, level in value.items():
                if not 0 < len(name) <= 64 or not -1000 <= level <= 1000:
                    raise ValueError("skill names have 1-64 characters and levels lie in -1000..1000")
        return value

    @field_validator("languages", "groups")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not 0 < len(v) <= 64 for v in value):
            raise ValueError("labels have 1-64 characters")
        return value


class PresenceUpdate(BaseModel):
    """Set presence; ``reason`` names a not-ready state (lunch, training) that reports count separately."""

    presence: Presence
    reason: str | None = Field(default=None, min_length=1, max_length=40)

    model_config = ConfigDict(json_schema_extra={"examples": [{"presence": "away", "reason": "lunch"}]})


class AgentLoad(BaseModel):
    voice: int = 0
    chat: int = 0
    email: int = 0


class AgentProfileRead(ReadModel):
    agent_id: str
    skills: dict[str, Any]
    languages: list[Any]
    groups: list[Any]
    vip: bool
    attributes: dict[str, Any]
    capacities: dict[str, Any]
    presence: str
    presence_reason: str | None
    presence_since: datetime
    last_offered_at: datetime | None
    load: AgentLoad = Field(default_factory=AgentLoad)
    version: int
    created_at: datetime
    updated_at: datetime


class QueueBase(BaseModel):
    target_expression: str | None = Field(
        default=None, max_length=2000,
        description="Which agents may serve this queue, e.g. `skills.returns >= 2 AND languages HAS task.language`")
    offer_timeout_seconds: int = Field(default=30, ge=1, le=3600)
    auto_accept: bool = False
    wrapup_seconds: int = Field(default=0, ge=0, le=3600)
    sl_target_seconds: int = Field(default=20, ge=1, le=86400)
    sl_goal_percent: int = Field(default=80, ge=1, le=100)


class QueueCreate(QueueBase):
    name: str = Field(min_length=1, max_length=100)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "售后 After-sales", "target_expression": "skills.returns >= 2 AND languages HAS task.language",
        "offer_timeout_seconds": 30, "wrapup_seconds": 15, "sl_target_seconds": 20, "sl_goal_percent": 80}]})


class QueueUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    target_expression: str | None = Field(default=None, max_length=2000)
    offer_timeout_seconds: int | None = Field(default=None, ge=1, le=3600)
    auto_accept: bool | None = None
    wrapup_seconds: int | None = Field(default=None, ge=0, le=3600)
    sl_target_seconds: int | None = Field(default=None, ge=1, le=86400)
    sl_goal_percent: int | None = Field(default=None, ge=1, le=100)

    model_config = ConfigDict(json_schema_extra={"examples": [{"target_expression": "skills.returns >= 1"}]})


class QueueRead(ReadModel):
    id: str
    name: str
    target_expression: str | None
    offer_timeout_seconds: int
    auto_accept: bool
    wrapup_seconds: int
    sl_target_seconds: int
    sl_goal_percent: int
    version: int
    created_at: datetime
    updated_at: datetime


class TargetIn(BaseModel):
    """One step: a queue (or ``workflow_id`` to continue in another workflow), waited on until ``timeout_seconds``
    after the task's creation."""

    queue_id: str | None = Field(default=None, min_length=1, max_length=40)
    workflow_id: str | None = Field(default=None, min_length=1, max_length=40)
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    timeout_seconds: int | None = Field(default=None, ge=0, le=7 * 86400)
    expression: str | None = Field(default=None, max_length=2000)
    skip_if_no_agents: bool = False


class FilterIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expression: str = Field(min_length=1, max_length=2000)
    targets: list[TargetIn] = Field(max_length=20)


class WorkflowBase(BaseModel):
    filters: list[FilterIn] = Field(default_factory=list, max_length=50)
    default_targets: list[TargetIn] = Field(default_factory=list, max_length=20)
    sticky_seconds: int = Field(default=0, ge=0, le=86400,
                                description="A returning customer waits this long for the agent who served them last")
    is_default: bool = False


_WORKFLOW_EXAMPLE = {
    "name": "默认 Default", "is_default": True, "sticky_seconds": 20,
    "filters": [{"name": "VIP", "expression": "vip_level >= 3",
                 "targets": [{"queue_id": "que_01jd0000000000000000000000", "priority": 10, "timeout_seconds": 30},
                             {"queue_id": "que_01jd0000000000000000000001"}]}],
    "default_targets": [{"queue_id": "que_01jd0000000000000000000001"}]}


class WorkflowCreate(WorkflowBase):
    name: str = Field(min_length=1, max_length=100)

    model_config = ConfigDict(json_schema_extra={"examples": [_WORKFLOW_EXAMPLE]})


class WorkflowUpdate(WorkflowBase):
    """Replaces the whole workflow (send ``If-Match`` to refuse a stale edit)."""

    name: str = Field(min_length=1, max_length=100)

    model_config = ConfigDict(json_schema_extra={"examples": [_WORKFLOW_EXAMPLE]})


class WorkflowRead(ReadModel):
    id: str
    name: str
    is_default: bool
    filters: list[dict[str, Any]]
    default_targets: list[dict[str, Any]]
    sticky_seconds: int
    version: int
    created_at: datetime
    updated_at: datetime


class TaskRead(ReadModel):
    id: str
    conversation_id: str | None
    contact_id: str | None
    channel: str
    status: str
    priority: int
    attributes: dict[str, Any]
    workflow_id: str | None
    queue_id: str | None
    step: int | None
    pinned_queue_id: str | None
    pinned_agent_id: str | None
    agent_id: str | None
    offer_count: int
    created_at: datetime
    assigned_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    wrapup_until: datetime | None
    version: int


class TaskUpdate(BaseModel):
    """Attributes to merge into a live task (what workflows and expressions read) and/or a new priority."""

    attributes: dict[str, Any] | None = Field(default=None, max_length=50)
    priority: int | None = Field(default=None, ge=-1000, le=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "attributes": {"intent": "return_exchange", "emotion": "angry", "category": "large_appliance"},
        "priority": 5}]})


class TaskTransfer(BaseModel):
    """Move a task to another queue or offer it to one agent (exactly one of the two)."""

    queue_id: str | None = Field(default=None, min_length=1, max_length=40)
    agent_id: str | None = Field(default=None, min_length=1, max_length=40)

    model_config = ConfigDict(json_schema_extra={"examples": [{"queue_id": "que_01jd0000000000000000000000"}]})


class OfferRead(ReadModel):
    id: str
    task_id: str
    agent_id: str
    queue_id: str | None
    status: str
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None


class ExpressionCheck(BaseModel):
    expression: str = Field(max_length=2000)

    model_config = ConfigDict(json_schema_extra={"examples": [{"expression": "skills.returns >= 2"}]})


class ExpressionCheckRead(BaseModel):
    valid: bool
    task_attributes: list[str]


class QueueStats(BaseModel):
    queue_id: str
    name: str
    waiting: int
    offered: int
    assigned: int
    longest_wait_seconds: float
    agents_eligible: int
    agents_available: int
    agents_busy: int
    answered: int
    abandoned: int
    answered_within_target: int
    service_level: float | None
    sl_target_seconds: int
    sl_goal_percent: int
    average_speed_of_answer_seconds: float | None
    window_hours: float


class StatsRead(BaseModel):
    generated_at: str
    queues: list[QueueStats]


Kind = Literal["queue", "agent"]
