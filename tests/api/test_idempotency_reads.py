"""An Idempotency-Key on a POST route that only reads: the answer is stored and replayed, at once.

The middleware stores the answer from a session of its own while the response is sent. The route's unit of work
must be closed by then: its read transaction holds SQLite's write lock, and the store used to wait for it for
the whole busy timeout (30 s), then fail.
"""

from __future__ import annotations

import httpx

from tests.channels.chat import customer_says, start_session
from tests.factories import TenantFixture

TEMPLATE = {"scope": "shared", "shortcut": "eta", "title": "ETA", "body_en": "Hi {{customer.name}}, soon."}


async def test_a_reading_post_with_an_idempotency_key_answers_and_replays(http: httpx.AsyncClient,
                                                                          tenant: TenantFixture) -> None:
    visitor = await start_session(http, tenant.inbox_id, name="Ada")
    said = await customer_says(http, visitor["visitor_token"], "where is my parcel?")
    canned = (await http.post("/api/v1/canned-responses", headers=tenant.admin.headers, json=TEMPLATE)).json()
    headers = {**tenant.agent.headers, "Idempotency-Key": "render-1"}
    body = {"conversation_id": said["conversation_id"], "locale": "en"}
    url = f"/api/v1/canned-responses/{canned['id']}/render"

    first = await http.post(url, headers=headers, json=body)  # the client gives up after 15 s
    assert first.status_code == 200, first.text
    assert first.json()["body"] == "Hi Ada, soon."
    again = await http.post(url, headers=headers, json=body)
    assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
