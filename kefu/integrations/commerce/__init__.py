"""Order-system connectors: demo shop, marketplace normalisers, generic REST, webhooks.

``install()`` registers the connector kinds with the commerce domain (which never imports this package);
the API router, the CLI and the worker registry call it. Idempotent.
"""

from __future__ import annotations

from typing import Any

from kefu.commerce.sources import SOURCE_KINDS, register_source_kind


def _demo(tenant_id: str, config: dict[str, Any]) -> Any:
    from kefu.integrations.commerce.demo_shop import DEFAULT_SEED, DemoShop

    return DemoShop(seed=int(config.get("seed", DEFAULT_SEED)))


def _rest(tenant_id: str, config: dict[str, Any]) -> Any:
    from kefu.integrations.commerce.rest import RestOrderSource

    return RestOrderSource(config)


def install() -> None:
    if "demo_shop" not in SOURCE_KINDS:
        register_source_kind("demo_shop", _demo)
    if "rest" not in SOURCE_KINDS:
        register_source_kind("rest", _rest)


install()
