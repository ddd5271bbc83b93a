"""The ``kefu`` command: serve, migrate, demo data, audit verification."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from kefu.core.settings import Settings

app = typer.Typer(help="Kefu (客服) contact center", no_args_is_help=True)
demo_app = typer.Typer(help="Demo shop data", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
app.add_typer(audit_app, name="audit")
console = Console()


def _settings() -> Settings:
    return Settings()


async def _with_runtime(settings: Settings, fn):  # type: ignore[no-untyped-def]
    from kefu.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        return await fn(runtime)
    finally:
        await runtime.engine.dispose()


def _refuse_demo_in_production(settings: Settings) -> None:
    """The demo users have published passwords; they must never exist on a production deployment."""
    if settings.environment == "production":
        console.print("[red]refusing to seed the demo shop: KEFU_ENVIRONMENT is production[/red]")
        raise typer.Exit(2)


def _print_demo(info, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="Kefu demo shop 演示商城", show_lines=False)
    table.add_column("role 角色")
    table.add_column("email 邮箱")
    table.add_column("password 密码")
    for email, _name, role, password in info.users:
        table.add_row(role, email, password)
    console.print(table)
    base = settings.public_url.rstrip("/")
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
    _print_demo(info, settings)


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
    if migrate_first:
        upgrade(settings.database_url)
    if seed_demo:
        _refuse_demo_in_production(settings)
        from kefu.demo.seed import seed_demo as do_seed

        _print_demo(asyncio.run(_with_runtime(settings, do_seed)), settings)
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level.lower(), ws="websockets-sansio", access_log=False)


if __name__ == "__main__":
    app()
