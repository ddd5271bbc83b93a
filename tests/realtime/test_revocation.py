"""An open agent socket ends when its credential does: logout, deactivation, key revocation, expiry."""

from __future__ import annotations

import httpx

from kefu.auth import actions as auth_actions
from kefu.auth.models import User
from kefu.runtime import Runtime
from tests.conftest import LiveServer
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client


async def _second_session(runtime: Runtime, user_id: str, *, ttl: int | None = None) -> str:
    settings = runtime.settings if ttl is None else runtime.settings.model_copy(update={"session_ttl_seconds": ttl})
    uow = runtime.unit_of_work()
    try:
        user = await uow.session.get(User, user_id)
        token, _ = await auth_actions.do_open_session(uow, user=user, settings=settings)
        await uow.commit()
    finally:
        await uow.session.close()
    return token


async def test_logout_closes_that_session_only_and_deactivation_closes_all(
    server: LiveServer, http: httpx.AsyncClient, runtime: Runtime, tenant: TenantFixture
) -> None:
    other_token = await _second_session(runtime, tenant.agent.id)
    first, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    second, _, _ = await agent_client(server.ws_url, other_token)
    colleague, _, _ = await agent_client(server.ws_url, tenant.supervisor.token)

    assert (await http.post("/api/v1/auth/logout", headers=tenant.agent.headers)).status_code == 204
    code, _ = await first.closed()
    assert code == 4401
    await second.sync()  # still answers: another session of the same user stays open

    deactivated = await http.delete(f"/api/v1/users/{tenant.agent.id}", headers=tenant.admin.headers)
    assert deactivated.status_code == 204
    code, _ = await second.closed()
    assert code == 4401
    # Nobody else is affected, and the internal event never reaches a client.
    frames = await colleague.sync()
    assert all(not f["type"].startswith("auth.") for f in frames)
    await colleague.close()


async def test_revoked_api_key_and_expired_session_close_their_sockets(
    server: LiveServer, http: httpx.AsyncClient, runtime: Runtime, tenant: TenantFixture
) -> None:
    key = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                          json={"name": "crm", "scopes": ["conversations:read"]})
    assert key.status_code == 201
    integration, _, _ = await agent_client(server.ws_url, key.json()["token"])
    assert (await http.delete(f"/api/v1/api-keys/{key.json()['id']}", headers=tenant.admin.headers)).status_code == 204
    code, _ = await integration.closed()
    assert code == 4401

    short = await _second_session(runtime, tenant.supervisor.id, ttl=2)
    expiring, _, _ = await agent_client(server.ws_url, short)
    code, _ = await expiring.closed(timeout=10)
    assert code == 4401
