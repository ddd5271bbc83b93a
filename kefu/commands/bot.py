"""``kefu bot``: The bot: flows and simulation."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The bot: flows and simulation", no_args_is_help=True)
console = Console(width=120)


async def run_simulation(database_url: str, per_intent: int, seed: int):  # type: ignore[no-untyped-def]
    """Build a runtime on ``database_url`` and run the scripted simulation (see kefu.bot.simulation)."""
    import kefu.integrations.commerce as commerce_integrations
    from kefu.bot.simulation import simulate
    from kefu.core.settings import Settings
    from kefu.runtime import build_runtime

    commerce_integrations.install()
    runtime = build_runtime(Settings(database_url=database_url, log_level="ERROR"))
    try:
        return await simulate(runtime, per_intent=per_intent, seed=seed)
    finally:
        await runtime.close()


@app.command("simulate")
def simulate_command(
    per_intent: int = typer.Option(10, "--per-intent", min=1, max=500, help="Conversations per routine intent"),
    seed: int = typer.Option(7, help="Seed for picking customers"),
    database_url: str = typer.Option("", "--database-url",
                                     help="Run on this database (default: a throw-away SQLite file)"),
) -> None:
    """Scripted customers of the demo shop talk to the bot: containment per routine intent and handoffs."""
    from kefu.core.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="kefu-bot-sim-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'sim.db'}"
        upgrade(url)
        result = asyncio.run(run_simulation(url, per_intent, seed))
    table = Table(title="Bot containment over the demo shop (scripted customers, zh + en)")
    for column in ("intent", "conversations", "contained", "containment", "handoffs (reason×n)"):
        table.add_column(column)
    for intent, (total, contained, reasons) in sorted(result.containment().items()):
        table.add_row(intent, str(total), str(contained), f"{contained / total:.0%}",
                      ", ".join(f"{r}×{n}" for r, n in reasons.most_common()) or "-")
    console.print(table)
    console.print(f"overall containment of routine intents: [bold]{result.overall:.1%}[/bold] "
                  f"over {len(result.runs)} conversations")
    escalated = sum(1 for _, reason, rep in result.escalations if rep and rep.handoff_reason == reason)
    console.print(f"escalation scripts handed to people for the expected reason: {escalated}/{len(result.escalations)}")
    console.print(f"handoffs decided {result.handoffs_decided}, recorded {result.handoffs_recorded}, "
                  f"with a live routing task {result.handoffs_routed}, owned by people "
                  f"{result.handoffs_owned_by_people}: [bold]lost {result.handoffs_lost}[/bold]")
    if result.turn_ms:
        ordered = sorted(result.turn_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        console.print(f"bot turn latency (claim → answer stored): median {statistics.median(ordered):.1f} ms, "
                      f"p99 {p99:.1f} ms over {len(ordered)} turns; wall {result.seconds:.1f} s")
    if result.handoffs_lost:
        raise typer.Exit(1)
