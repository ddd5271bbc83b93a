"""What search and the bot serve follows every edit of a published entry and the clock, on every node.

Each node caches its tenants' search indexes and checks a fingerprint of the published entries before using
one. An edit of a published entry's validity, channels or category changes what may be served without
publishing a new version, so it must change the fingerprint too; and an entry whose validity ends while the
index is cached must stop being served with no write at all. Recording answers and verdicts moves the
entries' analytics, so it needs ``knowledge:feedback``: a read-only API key cannot.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from tests.auth.helpers import create_key
from tests.channels.chat import bearer
from tests.factories import TenantFixture
from tests.knowledge.helpers import create_entry, search


def _ids(hits: list[dict]) -> set[str]:
    return {h["id"] for h in hits}


def _offered(answer: dict) -> set[str]:
    """The entries a recorded bot answer gave or offered."""
    return _ids(([answer["best"]] if answer["best"] else []) + answer["choices"])


async def _patch(http: httpx.AsyncClient, tenant: TenantFixture, entry: dict, **fields: object) -> dict:
    response = await http.patch(f"/api/v1/kb-entries/{entry['id']}", json=fields,
                                headers={**tenant.admin.headers, "If-Match": f'"{entry["version"]}"'})
    assert response.status_code == 200, response.text
    return response.json()


async def test_editing_a_published_entrys_validity_or_channels_changes_what_is_served_at_once(
        http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    promo = await create_entry(http, tenant, language="en", question="Is there a discount on the blue kettle?",
                               answer="Yes: 20% off the blue kettle until Sunday.")
    other = await create_entry(http, tenant, language="en", question="How do I clean the blue kettle?",
                               answer="Rinse it with vinegar.")
    # Both are served (and the tenant's index is now cached by the node).
    assert {promo["id"], other["id"]} <= _ids(await search(http, tenant, "blue kettle discount", limit=10))
    asked = (await http.post("/api/v1/kb-answers", headers=tenant.admin.headers,
                             json={"question": "is there a discount on the blue kettle", "language": "en"})).json()
    assert asked["decision"] == "answer" and asked["best"]["id"] == promo["id"]

    # The promotion ended early: the admin moves its end into the past, without publishing anything.
    ended = await _patch(http, tenant, promo, valid_until=(datetime.now(UTC) - timedelta(minutes=1)).isoformat())
    assert ended["published_version"] == 1 and ended["version"] == 2
    assert promo["id"] not in _ids(await search(http, tenant, "blue kettle discount", limit=10))
    asked = (await http.post("/api/v1/kb-answers", headers=tenant.admin.headers,
                             json={"question": "is there a discount on the blue kettle", "language": "en"})).json()
    assert promo["id"] not in _offered(asked), asked

    # The cleaning tip moves to email only: web chat no longer offers it, email does.
    assert other["id"] in _ids(await search(http, tenant, "clean the blue kettle", channel="webchat"))
    await _patch(http, tenant, other, channels=["email"])
    assert other["id"] not in _ids(await search(http, tenant, "clean the blue kettle", channel="webchat"))
    assert other["id"] in _ids(await search(http, tenant, "clean the blue kettle", channel="email"))


async def test_an_entry_stops_being_served_when_its_validity_ends_with_no_write(
        http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    ends = datetime.now(UTC) + timedelta(seconds=3)
    flash = await create_entry(http, tenant, language="en", question="Is the flash sale on the red teapot still on?",
                               answer="Yes, for a few more seconds.", valid_until=ends.isoformat())
    assert flash["id"] in _ids(await search(http, tenant, "flash sale red teapot"))
    assert datetime.now(UTC) < ends  # the check above ran inside the window
    await asyncio.sleep((ends - datetime.now(UTC)).total_seconds() + 0.1)
    assert flash["id"] not in _ids(await search(http, tenant, "flash sale red teapot"))
    asked = (await http.post("/api/v1/kb-answers", headers=tenant.admin.headers,
                             json={"question": "is the flash sale on the red teapot still on", "language": "en"})).json()
    assert flash["id"] not in _offered(asked), asked


async def test_a_read_only_key_cannot_record_answers_or_move_the_counters(http: httpx.AsyncClient,
                                                                          tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    gift = await create_entry(http, tenant, language="en", question="Do you offer gift wrapping?",
                              answer="Yes, for 5 CNY at checkout.")
    await create_entry(http, tenant, language="en", question="Do you offer gift cards?", answer="Not yet.")
    answered = (await http.post("/api/v1/kb-answers", headers=admin,
                                json={"question": "do you offer gift wrapping", "language": "en"})).json()
    assert answered["best"]["id"] == gift["id"]
    offered = (await http.post("/api/v1/kb-answers", headers=admin,
                               json={"question": "gift", "language": "en"})).json()
    before = (await http.get(f"/api/v1/kb-entries/{gift['id']}", headers=admin)).json()["analytics"]

    reader = bearer((await create_key(http, admin, ["knowledge:read"]))["token"])
    assert (await http.get("/api/v1/kb-search", headers=reader, params={"q": "gift wrapping"})).status_code == 200
    attempts = [("/api/v1/kb-answers", {"question": "do you offer gift wrapping", "language": "en"}),
                (f"/api/v1/kb-answers/{answered['id']}/feedback", {"helpful": False}),
                (f"/api/v1/kb-answers/{answered['id']}/handoff", {}),
                (f"/api/v1/kb-answers/{offered['id']}/choice", {"entry_id": gift["id"]})]
    for path, body in attempts:
        refused = await http.post(path, headers=reader, json=body)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "insufficient_scope", path
    after = (await http.get(f"/api/v1/kb-entries/{gift['id']}", headers=admin)).json()["analytics"]
    assert after == before

    # A key given knowledge:feedback (an integration's own bot) records them; so do agents.
    recorder = bearer((await create_key(http, admin, ["knowledge:read", "knowledge:feedback"]))["token"])
    verdict = await http.post(f"/api/v1/kb-answers/{answered['id']}/feedback", headers=recorder,
                              json={"helpful": False})
    assert verdict.status_code == 204, verdict.text
    handed = await http.post(f"/api/v1/kb-answers/{answered['id']}/handoff", headers=tenant.agent.headers, json={})
    assert handed.status_code == 204, handed.text
    after = (await http.get(f"/api/v1/kb-entries/{gift['id']}", headers=admin)).json()["analytics"]
    assert (after["not_helpful"], after["handoffs"]) == (before["not_helpful"] + 1, before["handoffs"] + 1)
