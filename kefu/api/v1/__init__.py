"""Every router of the public API, in the order they appear in the OpenAPI document."""

from kefu.api.v1 import (
    api_keys,
    audit,
    auth,
    bot,
    commerce,
    contacts,
    conversations,
    demo,
    inboxes,
    knowledge,
    nlu,
    ops,
    routing,
    users,
    widget,
)
from kefu.realtime import gateway

ROUTERS = [
    ops.router,
    auth.router,
    users.router,
    api_keys.router,
    audit.router,
    inboxes.router,
    contacts.router,
    conversations.router,
    widget.router,
    routing.router,
    commerce.router,
    nlu.router,
    bot.router,
    knowledge.router,
    gateway.router,
    demo.router,
]
