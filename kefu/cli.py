"""The ``kefu`` command: serve, migrate, demo data, audit verification."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from kefu.commands import bot as bot_cmd
from kefu.commands import commerce as commerce_cmd
from kefu.commands import kb as kb_cmd
from kefu.commands import nlu as nlu_cmd
from kefu.commands import routing as routing_cmd
from kefu.core.settings import Settings

app = typer.Typer(help="Kefu (客服) contact center", no_args_is_help=True)
demo_app = typer.Typer(help="Demo shop data", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
app.add_typer(audit_app, name="audit")
users_app = typer.Typer(help="Users", no_args_is_help=True)
app.add_typer(users_app, name="users")
for _name, _sub in (("routing", routing_cmd.app), ("commerce", commerce_cmd.app), ("nlu", nlu_cmd.app),
                    ("kb", kb_cmd.app), ("bot", bot_cmd.app)):
    app.add_typer(_sub, name=_name)
console = Console()


def _settings() -> Settings:
    return Settings()


async def _with_runtime(settings: Settings, fn):  # type: ignore[no-untyped-def]
    from kefu.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        return await fn(runtime)
    finally:
        await runtime.close()


def _refuse_demo_in_production(settings: Settings) -> None:
    """The demo users have published passwords; they must never exist on a production deployment."""
    if settings.environment == "production":
        console.print("[red]refusing to seed the demo shop: KEFU_ENVIRONMENT is production[/red]")
        raise typer.Exit(2)


def _printed_base(settings: Settings, host: str, port: int) -> str:
    """The URL to print: ``KEFU_PUBLIC_URL`` when set, else where this process listens (a wildcard address is
    reached on the loopback), so ``kefu serve --port 8011`` does not print links to port 8000."""
    if "public_url" in settings.model_fields_set:
        return settings.public_url.rstrip("/")
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


def _print_demo(info, base: str) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="Kefu demo shop 演示商城", show_lines=False)
    table.add_column("role 角色")
    table.add_column("email 邮箱")
    table.add_column("password 密码")
    for email, _name, role, password in info.users:
        table.add_row(role, email, password)
    console.print(table)
    console.print(f"Agent workspace 坐席工作台: [bold]{base}/app/[/bold]")
    console.print(f"Shop page with the chat widget 带客服挂件的商城页面: [bold]{base}/demo/shop[/bold]")
    console.print(f"API docs 接口文档: {base}/docs    Inbox 渠道: {info.inbox_id}")


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest schema."""
    from kefu.core.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    console.print("database is up to date")


@demo_app.command("seed")
def demo_seed() -> None:
    """Create (or find) the demo shop tenant, its users and web chat inbox; print the logins."""
    from kefu.core.migrate import upgrade
    from kefu.demo.seed import seed_demo

    settings = _settings()
    _refuse_demo_in_production(settings)
    upgrade(settings.database_url)
    info = asyncio.run(_with_runtime(settings, seed_demo))
    _print_demo(info, _printed_base(settings, settings.host, settings.port))


@audit_app.command("verify")
def audit_verify(
    tenant: str = typer.Option(None, "--tenant", help="Only this tenant (id); default every tenant with entries"),
) -> None:
    """Check the audit hash chains; exit code 1 if an entry was edited, deleted or re-linked."""
    from kefu.audit import service as audit_service

    async def _verify(runtime):  # type: ignore[no-untyped-def]
        async with runtime.sessionmaker() as session:
            return await audit_service.verify_chain(session=session, tenant_id=tenant)

    reports = asyncio.run(_with_runtime(_settings(), _verify))
    # One plain line per tenant: never truncated by the terminal width, easy to grep in cron mail.
    for r in reports:
        if r.ok:
            line = f"ok        tenant={r.tenant_id} entries={r.entries_checked} head_hash={r.head_hash or '-'}"
        else:
            line = (f"TAMPERED  tenant={r.tenant_id} entries_checked={r.entries_checked} "
                    f"first_bad_seq={r.first_bad_seq} reason={r.reason}")
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    bad = [r for r in reports if not r.ok]
    if bad:
        console.print(f"[bold red]tampering detected in {len(bad)} of {len(reports)} chain(s)[/bold red]")
        raise typer.Exit(code=1)
    console.print(f"{len(reports)} chain(s) verified, no tampering found")


@users_app.command("create")
def users_create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant slug or id"),
    email: str = typer.Option(..., "--email"),
    role: str = typer.Option("admin", "--role", help="admin, supervisor or agent"),
    display_name: str = typer.Option(None, "--name", help="Display name (default: the email)"),
    locale: str = typer.Option("zh", "--locale", help="zh or en"),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True,
                                 help="Prompted for when left out"),
) -> None:
    """Create a user in a tenant (e.g. the first admin); audited as done by the system."""
    from sqlalchemy import select

    from kefu.auth import actions as auth_actions
    from kefu.auth.policies import ROLES
    from kefu.core.errors import DomainError
    from kefu.core.i18n import translate
    from kefu.tenants.models import Tenant

    if role not in ROLES:
        console.print(f"[red]role must be one of {', '.join(ROLES)}[/red]")
        raise typer.Exit(code=2)
    if locale not in ("zh", "en"):
        console.print("[red]locale must be zh or en[/red]")
        raise typer.Exit(code=2)

    async def _create(runtime):  # type: ignore[no-untyped-def]
        uow = runtime.unit_of_work()
        try:
            found = (await uow.session.scalars(
                select(Tenant.id).where((Tenant.slug == tenant) | (Tenant.id == tenant)))).first()
            if found is None:
                return None
            user = await auth_actions.do_create_user(uow, tenant_id=found, email=email,
                                                     display_name=display_name or email, role=role,
                                                     password=password, locale=locale)
            await uow.commit()
            return user
        finally:
            await uow.session.close()

    try:
        user = asyncio.run(_with_runtime(_settings(), _create))
    except DomainError as exc:
        console.print(f"[red]{exc.code}: {translate(exc.code, 'en', **exc.params)}[/red]")
        raise typer.Exit(code=1) from None
    if user is None:
        console.print(f"[red]no tenant with slug or id {tenant!r}[/red]")
        raise typer.Exit(code=1)
    console.print(f"created {user.role} {user.email} ({user.id}) in tenant {user.tenant_id}")


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default KEFU_HOST or 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (default KEFU_PORT or 8000)"),
    seed_demo: bool = typer.Option(False, "--seed-demo", help="Seed the demo shop before serving"),
    migrate_first: bool = typer.Option(True, "--migrate/--no-migrate", help="Apply migrations at start-up"),
) -> None:
    """Serve the API, WebSockets and widget (one node)."""
    import uvicorn

    from kefu.app import create_app
    from kefu.core.migrate import upgrade

    settings = _settings()
    host, port = host or settings.host, port or settings.port
    if migrate_first:
        upgrade(settings.database_url)
    if seed_demo:
        _refuse_demo_in_production(settings)
        from kefu.demo.seed import seed_demo as do_seed

        _print_demo(asyncio.run(_with_runtime(settings, do_seed)), _printed_base(settings, host, port))
    from kefu.runtime import prepare_serving_process

    prepare_serving_process()
    uvicorn.run(create_app(settings), host=host, port=port,
                log_level=settings.log_level.lower(), ws="websockets-sansio", access_log=False,
                proxy_headers=True, forwarded_allow_ips=settings.trusted_proxies)


if __name__ == "__main__":
    app()
