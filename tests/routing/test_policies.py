"""The pure routing decision on a simulated clock: workflow steps and overflow, order, agent choice, capacity."""

from __future__ import annotations

from kefu.routing import policies
from kefu.routing.policies import AgentView, Filter, QueueView, Target, TaskView, WorkflowView, route

SPECIALISTS = QueueView("que_special", "skills.large_appliance >= 2")
EVERYONE = QueueView("que_all", None)
VIP = QueueView("que_vip", "vip == true")
QUEUES = {q.id: q for q in (SPECIALISTS, EVERYONE, VIP)}
WORKFLOW = WorkflowView("wf_1", (
    Filter("large appliances", "category == 'large_appliance'",
           (Target(queue_id="que_special", timeout_seconds=30), Target(queue_id="que_all"))),
    Filter("vip", "vip_level >= 3", (Target(queue_id="que_vip", priority=10),)),
), (Target(queue_id="que_all"),), sticky_seconds=20)


def agent(agent_id: str, *, skills: dict | None = None, vip: bool = False, chat: int = 1, load: int = 0,
          last: float = 0.0, presence: str = "available") -> AgentView:
    return AgentView(agent_id, {"id": agent_id, "skills": skills or {}, "vip": vip, "languages": ["zh"]}, presence,
                     {"voice": 1, "chat": chat, "email": 0}, {"chat": load}, last)


def task(task_id: str, created: float, **attributes) -> TaskView:  # type: ignore[no-untyped-def]
    priority = attributes.pop("priority", 0)
    return TaskView(task_id, "chat", priority, attributes, created)


def decide(tasks: list[TaskView], agents: list[AgentView], now: float) -> dict[str, str]:
    result = route(tasks=tasks, agents={a.id: a for a in agents}, queues=QUEUES, workflows={"wf_1": WORKFLOW},
                   default_workflow_id="wf_1", now=now)
    return {d.task_id: d.agent_id for d in result.decisions}


def test_a_task_waits_for_its_specialists_then_overflows_after_the_timeout() -> None:
    generalist = agent("usr_general")
    fridge = task("tsk_1", 0.0, category="large_appliance")
    assert decide([fridge], [generalist], now=29.9) == {}
    result = route(tasks=[fridge], agents={"usr_general": generalist}, queues=QUEUES, workflows={"wf_1": WORKFLOW},
                   default_workflow_id="wf_1", now=10.0)
    assert result.placements["tsk_1"].queue_id == "que_special" and result.placements["tsk_1"].step == 0
    # 30 s after the task's creation the second target applies (timeouts count from creation).
    assert decide([fridge], [generalist], now=30.0) == {"tsk_1": "usr_general"}


def test_a_specialist_gets_it_at_once() -> None:
    assert decide([task("tsk_1", 0.0, category="large_appliance")],
                  [agent("usr_general"), agent("usr_fridge", skills={"large_appliance": 2}, last=5.0)],
                  now=1.0) == {"tsk_1": "usr_fridge"}


def test_skip_if_no_agents_moves_on_at_once() -> None:
    workflow = WorkflowView("wf_1", (), (Target(queue_id="que_special", timeout_seconds=300, skip_if_no_agents=True),
                                         Target(queue_id="que_all")))
    result = route(tasks=[task("tsk_1", 0.0)], agents={"usr_g": agent("usr_g")}, queues=QUEUES,
                   workflows={"wf_1": workflow}, default_workflow_id="wf_1", now=1.0)
    assert [(d.task_id, d.agent_id, d.queue_id) for d in result.decisions] == [("tsk_1", "usr_g", "que_all")]


def test_priority_first_then_oldest_first() -> None:
    tasks = [task("tsk_old", 0.0), task("tsk_new", 5.0), task("tsk_vip", 9.0, vip_level=3)]
    agents = [agent("usr_a", vip=True)]
    # One VIP-capable agent: the VIP task (priority 10 from its target) goes first although it is newest.
    assert decide(tasks, agents, now=10.0) == {"tsk_vip": "usr_a"}
    assert decide(tasks[:2], [agent("usr_b")], now=10.0) == {"tsk_old": "usr_b"}


def test_longest_idle_agent_first_then_least_occupied() -> None:
    agents = [agent("usr_recent", last=50.0), agent("usr_idle", last=10.0), agent("usr_idle_busy", last=10.0, chat=3,
                                                                                    load=2)]
    assert decide([task("tsk_1", 0.0)], agents, now=60.0) == {"tsk_1": "usr_idle"}


def test_capacity_is_never_exceeded_and_work_is_spread() -> None:
    agents = [agent("usr_a", chat=2), agent("usr_b", chat=1)]
    tasks = [task(f"tsk_{i}", float(i)) for i in range(5)]
    decided = decide(tasks, agents, now=10.0)
    assert sorted(decided) == ["tsk_0", "tsk_1", "tsk_2"]  # 3 slots, oldest tasks first
    assert sorted(decided.values()) == ["usr_a", "usr_a", "usr_b"]
    assert all(a.load["chat"] <= a.capacities["chat"] for a in agents)


def test_unavailable_agents_and_recent_decliners_are_skipped() -> None:
    declined = task("tsk_1", 0.0)
    declined.declined = {"usr_a": 100.0}
    agents = [agent("usr_a"), agent("usr_away", presence="away")]
    assert decide([declined], agents, now=50.0) == {}
    assert decide([declined], agents, now=100.0) == {"tsk_1": "usr_a"}


def test_sticky_routing_prefers_the_last_agent_for_a_while() -> None:
    returning = task("tsk_1", 0.0)
    returning.preferred_agent_id = "usr_last"
    last = agent("usr_last", chat=1, load=1, last=1.0)  # busy with someone else right now
    other = agent("usr_other", last=0.0)
    assert decide([returning], [last, other], now=10.0) == {}  # waits for the agent who served them
    assert decide([returning], [last, other], now=20.0) == {"tsk_1": "usr_other"}  # sticky_seconds passed
    last.load["chat"] = 0
    assert decide([returning], [last, other], now=5.0) == {"tsk_1": "usr_last"}


def test_sticky_routing_does_not_wait_for_an_offline_agent() -> None:
    returning = task("tsk_1", 0.0)
    returning.preferred_agent_id = "usr_last"
    assert decide([returning], [agent("usr_last", presence="offline"), agent("usr_other")], now=1.0) == {
        "tsk_1": "usr_other"}


def test_a_transfer_to_an_agent_only_offers_to_that_agent() -> None:
    pinned = task("tsk_1", 0.0)
    pinned.pinned_agent_id = "usr_b"
    assert decide([pinned], [agent("usr_a"), agent("usr_b", last=99.0)], now=100.0) == {"tsk_1": "usr_b"}


def test_workflow_delegation_and_cycle_detection() -> None:
    inner = WorkflowView("wf_inner", (), (Target(queue_id="que_all"),))
    outer = WorkflowView("wf_outer", (), (Target(workflow_id="wf_inner"),))
    targets = policies.targets_for(task("tsk_1", 0.0), {"wf_inner": inner, "wf_outer": outer}, "wf_outer")
    assert [t.queue_id for t in targets] == ["que_all"]
    assert policies.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "b", "c", "a"]
    assert policies.find_cycle({"a": {"b"}, "b": set()}, "a") is None
