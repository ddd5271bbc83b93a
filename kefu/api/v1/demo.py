"""The demo shop page: a product page of the seeded demo tenant with the chat widget embedded.

``/demo/shop?customer=c1001`` plays the shop's backend for a logged-in customer: it signs a one-time
identity token with the inbox secret, which is what a real shop does server-side (never in the browser).
Not served in production, where anybody could otherwise obtain tokens for arbitrary customer ids.
"""

from __future__ import annotations

import html
import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from kefu.api.deps import RuntimeDep
from kefu.channels import identity
from kefu.channels import service as channel_service
from kefu.core.errors import NotFound
from kefu.demo.seed import DEMO_SLUG
from kefu.tenants import service as tenant_service

router = APIRouter(tags=["demo"])

PRODUCTS = (
    ("无线降噪耳机", "Wireless noise-cancelling headphones", "599.00", "🎧"),
    ("智能手环 7", "Smart band 7", "249.00", "⌚"),
    ("保温杯 500ml", "Insulated bottle 500 ml", "89.00", "🥤"),
)


@router.get("/demo/shop", response_class=HTMLResponse, summary="Demo shop page with the chat widget embedded",
            responses={404: {"description": "demo_not_seeded: run `kefu demo seed` first"}})
async def demo_shop(
    request: Request,
    runtime: RuntimeDep,
    customer: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                          description="Pretend this shop customer id is logged in")] = None,
) -> HTMLResponse:
    if runtime.settings.environment == "production":
        raise NotFound("route_not_found")
    async with runtime.sessionmaker() as session:
        tenant = await tenant_service.get_by_slug(session=session, slug=DEMO_SLUG)
        inboxes = await channel_service.list_inboxes(session=session, tenant_id=tenant.id, limit=1) if tenant else []
        await session.commit()
    if not inboxes:
        raise NotFound("demo_not_seeded")
    inbox = inboxes[0]
    token = (identity.make_identity_token(inbox.identity_secret, customer, secrets.token_urlsafe(16))
             if customer else None)
    page = render_page(inbox_id=inbox.id, identity_token=token, customer=customer,
                       base_url=str(request.base_url).rstrip("/"))
    # The identity token inside is single-use: the page must never come from a cache.
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def render_page(*, inbox_id: str, identity_token: str | None, customer: str | None, base_url: str) -> str:
    esc = html.escape
    token_attr = f' data-identity-token="{esc(identity_token)}"' if identity_token else ""
    who = (f"已登录顾客 Signed in as customer <b>{esc(customer)}</b> · <a href=\"/demo/shop\">退出 Sign out</a>"
           if customer else
           "游客 Guest · <a href=\"/demo/shop?customer=c1001\">以顾客 c1001 登录 Sign in as customer c1001</a>")
    cards = "\n".join(
        f"""      <article class="card"><div class="pic">{pic}</div><h2>{esc(zh)}<small>{esc(en)}</small></h2>
        <p class="price">¥{price}</p><button type="button">加入购物车 Add to cart</button></article>"""
        for zh, en, price, pic in PRODUCTS)
    snippet = esc(f'<script src="{base_url}/static/widget.js" data-inbox="{inbox_id}" async></script>')
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Kefu 演示商城 Demo Shop</title>
  <style>
    body {{ margin: 0; font-family: system-ui, -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif;
           background: #f5f6f8; color: #1f2329; }}
    header {{ background: #e4393c; color: #fff; padding: 16px 24px; display: flex; justify-content: space-between;
             align-items: center; flex-wrap: wrap; gap: 8px; }}
    header h1 {{ margin: 0; font-size: 20px; }}
    header a {{ color: #fff; }}
    main {{ max-width: 960px; margin: 24px auto; padding: 0 16px; }}
    .grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 16px; }}
    .card {{ background: #fff; border-radius: 8px; padding: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }}
    .pic {{ font-size: 64px; text-align: center; }}
    .card h2 {{ font-size: 16px; margin: 8px 0; }}
    .card h2 small {{ display: block; color: #646a73; font-weight: normal; }}
    .price {{ color: #e4393c; font-size: 20px; font-weight: 600; margin: 8px 0; }}
    .card button {{ border: 1px solid #e4393c; background: #fff; color: #e4393c; border-radius: 4px;
                   padding: 6px 12px; cursor: pointer; }}
    .embed {{ margin-top: 32px; background: #fff; border-radius: 8px; padding: 16px; font-size: 14px; }}
    code {{ display: block; white-space: pre-wrap; word-break: break-all; background: #f0f1f3; padding: 8px;
            border-radius: 4px; }}
  </style>
</head>
<body>
  <header>
    <h1>Kefu 演示商城 · Demo Shop</h1>
    <div class="who" data-testid="who">{who}</div>
  </header>
  <main>
    <p>有问题？点击右下角的按钮联系客服。 Questions? Chat with us using the button in the corner.</p>
    <section class="grid">
{cards}
    </section>
    <section class="embed">
      <p>把客服挂件嵌入任何网页 Embed the chat widget on any page:</p>
      <code>{snippet}</code>
    </section>
  </main>
  <script src="/static/widget.js" data-inbox="{esc(inbox_id)}"{token_attr} async></script>
</body>
</html>
"""
