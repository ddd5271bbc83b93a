"""CSAT: the customer rates a resolved conversation once per resolution, agents see it, reports add it up."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from hypothesis import given
from hypothesis import strategies as st

from kefu.feedback import policies
from tests.channels.chat import agent_says, bearer, customer_says, start_session
from tests.conftest import LiveServer
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client


async def _resolved_chat(http: httpx.AsyncClient, tenant: TenantFixture) -> tuple[str, str]:
    visitor = await start_session(http, tenant.inbox_id)
    token = visitor["visitor_token"]
    said = await customer_says(http, token, "退货怎么办理？")
    conversation_id = said["conversation_id"]
    await agent_says(http, tenant.agent.headers, conversation_id, "我来帮您办理")
    resolved = await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers)
    assert resolved.status_code == 200, resolved.text
    return token, conversation_id


async def test_customer_rates_and_updates_and_agents_see_it(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    token, conversation_id = await _resolved_chat(http, tenant)
    events_before = (await http.get("/api/v1/widget/events", headers=bearer(token))).json()["last_event_id"]
    first = await http.post("/api/v1/widget/csat", headers=bearer(token),
                            json={"conversation_id": conversation_id, "rating": 4, "comment": "  还行 "})
    assert first.status_code == 201, first.text
    rating = first.json()
    assert (rating["rating"], rating["comment"], rating["agent_id"]) == (4, "还行", tenant.agent.id)
    again = await http.post("/api/v1/widget/csat", headers=bearer(token),
                            json={"conversation_id": conversation_id, "rating": 5, "comment": "很快就解决了"})
    assert again.status_code == 200 and again.json()["id"] == rating["id"] and again.json()["rating"] == 5
    mine = await http.get("/api/v1/widget/csat", headers=bearer(token), params={"conversation_id": conversation_id})
    assert mine.status_code == 200 and mine.json()["rating"] == 5

    seen = await http.get(f"/api/v1/conversations/{conversation_id}/csat-ratings", headers=tenant.agent.headers)
    assert [(r["rating"], r["comment"]) for r in seen.json()["data"]] == [(5, "很快就解决了")]
    # Ratings are for agents: the customer's own event stream does not carry them.
    widget_events = (await http.get("/api/v1/widget/events", headers=bearer(token),
                                    params={"after": events_before})).json()["events"]
    assert not any(e["type"].startswith("csat.") for e in widget_events)

    # Reopened and resolved again: a new resolution can be rated anew.
    assert (await http.post(f"/api/v1/conversations/{conversation_id}/reopen",
                            headers=tenant.agent.headers)).status_code == 200
    reopened = await http.post("/api/v1/widget/csat", headers=bearer(token),
                               json={"conversation_id": conversation_id, "rating": 1})
    assert reopened.status_code == 409
    await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers)
    second = await http.post("/api/v1/widget/csat", headers=bearer(token),
                             json={"conversation_id": conversation_id, "rating": 2})
    assert second.status_code == 201 and second.json()["id"] != rating["id"]
    seen = await http.get(f"/api/v1/conversations/{conversation_id}/csat-ratings", headers=tenant.agent.headers)
    assert [r["rating"] for r in seen.json()["data"]] == [5, 2]


async def test_ratings_are_refused_when_they_make_no_sense(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    visitor = await start_session(http, tenant.inbox_id)
    said = await customer_says(http, visitor["visitor_token"], "hello")
    open_one = await http.post("/api/v1/widget/csat", headers=bearer(visitor["visitor_token"]),
                               json={"conversation_id": said["conversation_id"], "rating": 5})
    assert open_one.status_code == 409 and open_one.json()["error"]["code"] == "conversation_not_resolved"
    token, conversation_id = await _resolved_chat(http, tenant)
    stranger = await start_session(http, tenant.inbox_id)
    foreign = await http.post("/api/v1/widget/csat", headers=bearer(stranger["visitor_token"]),
                              json={"conversation_id": conversation_id, "rating": 1})
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "conversation_not_found"
    for rating in (0, 6):
        bad = await http.post("/api/v1/widget/csat", headers=bearer(token),
                              json={"conversation_id": conversation_id, "rating": rating})
        assert bad.status_code == 422
    none_yet = await http.get("/api/v1/widget/csat", headers=bearer(token), params={"conversation_id": conversation_id})
    assert none_yet.status_code == 404 and none_yet.json()["error"]["code"] == "csat_not_found"

    off = await http.patch(f"/api/v1/inboxes/{tenant.inbox_id}/appearance", headers=tenant.admin.headers,
                           json={"csat_enabled": False})
    assert off.status_code == 200
    disabled = await http.post("/api/v1/widget/csat", headers=bearer(token),
                               json={"conversation_id": conversation_id, "rating": 3})
    assert disabled.status_code == 409 and disabled.json()["error"]["code"] == "csat_disabled"
    await http.patch(f"/api/v1/inboxes/{tenant.inbox_id}/appearance", headers=tenant.admin.headers,
                     json={"csat_enabled": True})


async def test_report_averages_per_period_and_agent(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    for score in (5, 4, 1):
        token, conversation_id = await _resolved_chat(http, tenant)
        rated = await http.post("/api/v1/widget/csat", headers=bearer(token),
                                json={"conversation_id": conversation_id, "rating": score})
        assert rated.status_code == 201
    forbidden = await http.get("/api/v1/csat/report", headers=tenant.agent.headers)
    assert forbidden.status_code == 403
    report = await http.get("/api/v1/csat/report", headers=tenant.supervisor.headers, params={"period": "month"})
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["count"], body["average"]) == (3, "3.33")
    assert body["distribution"] == {"1": 1, "2": 0, "3": 0, "4": 1, "5": 1}
    assert [b["period"] for b in body["by_period"]] == [datetime.now(UTC).strftime("%Y-%m")]
    assert [(b["agent_id"], b["count"]) for b in body["by_agent"]] == [(tenant.agent.id, 3)]
    future = await http.get("/api/v1/csat/report", headers=tenant.admin.headers,
                            params={"since": "2100-01-01T00:00:00Z"})
    assert future.json() == {"count": 0, "average": None, "distribution": {str(i): 0 for i in range(1, 6)},
                             "by_period": [], "by_agent": []}
    naive = await http.get("/api/v1/csat/report", headers=tenant.admin.headers, params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


@given(st.lists(st.integers(min_value=1, max_value=5), max_size=200))
def test_summary_is_consistent(ratings: list[int]) -> None:
    count, average, distribution = policies.summarise(ratings)
    assert count == len(ratings) == sum(distribution.values())
    if ratings:
        assert abs(float(average) - sum(ratings) / len(ratings)) <= 0.005  # type: ignore[arg-type]
        assert 1 <= float(average) <= 5  # type: ignore[arg-type]
    else:
        assert average is None


async def test_agents_see_ratings_arrive_live(http: httpx.AsyncClient, server: LiveServer,
                                              tenant: TenantFixture) -> None:
    token, conversation_id = await _resolved_chat(http, tenant)
    agent, _, _ = await agent_client(server.ws_url, tenant.supervisor.token)
    try:
        await http.post("/api/v1/widget/csat", headers=bearer(token),
                        json={"conversation_id": conversation_id, "rating": 3, "comment": "一般"})
        frame = await agent.wait_for(lambda f: f["type"] == "csat.submitted")
        assert frame["data"]["csat"]["rating"] == 3 and frame["data"]["conversation"]["id"] == conversation_id
        await http.post("/api/v1/widget/csat", headers=bearer(token),
                        json={"conversation_id": conversation_id, "rating": 4})
        frame = await agent.wait_for(lambda f: f["type"] == "csat.updated")
        assert frame["data"]["csat"]["rating"] == 4 and frame["data"]["csat"]["comment"] is None
    finally:
        await agent.close()


async def test_a_returning_visitor_is_asked_once_per_resolution(http: httpx.AsyncClient,
                                                                tenant: TenantFixture) -> None:
    visitor = await start_session(http, tenant.inbox_id)
    token = visitor["visitor_token"]

    async def prompt() -> dict:
        response = await http.get("/api/v1/widget/csat/prompt", headers=bearer(token))
        assert response.status_code == 200, response.text
        return response.json()

    assert (await prompt())["ask"] is False  # no conversation yet
    said = await customer_says(http, token, "发票怎么开？")
    conversation_id = said["conversation_id"]
    assert (await prompt())["ask"] is False  # still open
    await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers)
    asked = await prompt()
    assert asked["ask"] is True and asked["conversation_id"] == conversation_id and asked["resolved_at"]
    # The same visitor token in a new session (a reload) is asked too; a stranger never is.
    stranger = await start_session(http, tenant.inbox_id)
    assert (await http.get("/api/v1/widget/csat/prompt",
                           headers=bearer(stranger["visitor_token"]))).json()["ask"] is False

    rated = await http.post("/api/v1/widget/csat", headers=bearer(token),
                            json={"conversation_id": conversation_id, "rating": 4})
    assert rated.status_code == 201
    assert (await prompt()) == {"ask": False, "conversation_id": None, "resolved_at": None}

    # Reopened and resolved again: a new resolution, asked again.
    await http.post(f"/api/v1/conversations/{conversation_id}/reopen", headers=tenant.agent.headers)
    assert (await prompt())["ask"] is False
    await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers)
    assert (await prompt())["ask"] is True
    # A newer conversation started by the customer takes over: the older one is not asked about.
    await customer_says(http, token, "再问一下")
    assert (await prompt())["ask"] is False

    # Ratings switched off for the inbox: never asked.
    other = await start_session(http, tenant.inbox_id)
    said = await customer_says(http, other["visitor_token"], "hi")
    await http.post(f"/api/v1/conversations/{said['conversation_id']}/resolve", headers=tenant.agent.headers)
    inbox = await http.get(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers)
    off = await http.patch(f"/api/v1/inboxes/{tenant.inbox_id}/appearance",
                           headers={**tenant.admin.headers, "If-Match": f'"{inbox.json()["version"]}"'},
                           json={"csat_enabled": False})
    assert off.status_code == 200, off.text
    assert (await http.get("/api/v1/widget/csat/prompt",
                           headers=bearer(other["visitor_token"]))).json()["ask"] is False


def test_prompt_window() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    fresh = dict(status="resolved", rated=False, enabled=True, now=now)
    assert policies.should_prompt(resolved_at=now - policies.PROMPT_WINDOW, **fresh)
    assert not policies.should_prompt(resolved_at=now - policies.PROMPT_WINDOW * 2, **fresh)
    assert not policies.should_prompt(resolved_at=now, **{**fresh, "rated": True})
    assert not policies.should_prompt(resolved_at=now, **{**fresh, "status": "closed"})
