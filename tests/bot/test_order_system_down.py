"""A failing order system makes the bot say so and hand off; it never invents an answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kefu.bot.runner import BotRunner
from kefu.commerce import actions as commerce_actions
from kefu.commerce.schemas import ConnectorCreate
from kefu.runtime import Runtime
from tests.bot.helpers import conversation_owner, shopper
from tests.factories import TenantFixture


class _Broken(BaseHTTPRequestHandler):
    """The shop's ERP having a bad day: every call is a 503."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "maintenance"}')

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def broken_erp() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_the_bot_says_the_order_system_is_down_and_hands_off(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture, broken_erp: str) -> None:
    uow = bot_runtime.unit_of_work()
    try:
        await commerce_actions.do_create_connector(uow, tenant_id=shop.id, actor=None, data=ConnectorCreate(
            name="ERP", kind="rest", marketplace="erp", config={"base_url": broken_erp, "timeout": 1.0}))
        await uow.commit()
    finally:
        await uow.session.close()
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id)
    report, replies = await customer.says("我的快递到哪了")
    assert report.outcome == "handoff" and report.handoff_reason == "order_system_down", report
    assert any("订单系统暂时无法查询" in r for r in replies)
    assert not any("运单号" in r or "DS1" in r for r in replies)  # nothing made up
    assert await conversation_owner(bot_runtime, shop.id, customer.conversation_id) == "queue"
