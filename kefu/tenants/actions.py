"""Creating tenants (a platform operation: CLI and seeding, not the tenant API)."""

from __future__ import annotations

from kefu.core.clock import utcnow
from kefu.core.errors import Conflict
from kefu.core.ids import new_id
from kefu.events.uow import UnitOfWork
from kefu.tenants import service as tenant_service
from kefu.tenants.models import Tenant
from kefu.tenants.schemas import TenantCreate


async def do_create_tenant(uow: UnitOfWork, *, data: TenantCreate) -> Tenant:
    if await tenant_service.get_by_slug(session=uow.session, slug=data.slug) is not None:
        raise Conflict("tenant_slug_taken")
    tenant = Tenant(id=new_id("ten"), slug=data.slug, name=data.name, default_locale=data.default_locale,
                    settings={}, created_at=utcnow())
    uow.session.add(tenant)
    await uow.session.flush()
    return tenant
