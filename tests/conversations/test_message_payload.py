"""A message's event and ack payload is exactly what the REST API's read model gives for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson

from kefu.conversations.schemas import MessageRead


def test_the_payload_equals_the_read_models_json_dump() -> None:
    messages = [
        MessageRead.model_validate({
            "id": "msg_1", "conversation_id": "cnv_1", "sender_kind": "customer", "sender_id": None,
            "body": "我的包裹在哪里？", "content_type": "text", "attachments": [], "private": False,
            "client_message_id": "c-1", "delivery_status": "sent",
            "created_at": datetime(2026, 12, 6, 23, 59, 59, 999_999, tzinfo=UTC)}),
        MessageRead.model_validate({
            "id": "msg_2", "conversation_id": "cnv_1", "sender_kind": "agent", "sender_id": "usr_1",
            "body": "", "content_type": "text", "private": True, "client_message_id": None,
            "attachments": [{"id": "att_1", "name": "发票.pdf", "content_type": "application/pdf", "size": 2048,
                             "meta": {"pages": 2, "scanned": None}}],
            "delivery_status": "delivered",
            "created_at": datetime(2026, 12, 7, 8, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=8)))}),
    ]
    for message in messages:
        payload = message.json_payload()
        assert payload == message.model_dump(mode="json")
        assert orjson.dumps(payload) == orjson.dumps(message.model_dump(mode="json"))  # same keys, same order
        payload["attachments"].append({"id": "att_x"})  # a payload is the caller's own: the message is unchanged
        assert message.json_payload() == message.model_dump(mode="json")
    assert messages[1].json_payload()["created_at"] == "2026-12-07T00:00:00.123Z"
