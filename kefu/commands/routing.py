"""``kefu routing``: Routing engine: simulation."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Routing engine: simulation", no_args_is_help=True)


@app.command()
def simulate(
    agents: int = typer.Option(..., "--agents", min=1, max=100_000, help="Number of agents (capacity 1 each)"),
    arrival_rate: float = typer.Option(..., "--arrival-rate", min=0.0, help="Contacts per hour (Poisson)"),
    aht: float = typer.Option(..., "--aht", min=0.001, help="Mean handle time in seconds (exponential)"),
    hours: float = typer.Option(8.0, "--hours", min=0.001, help="Simulated hours that are measured"),
    sl_target: float = typer.Option(20.0, "--sl-target", min=0.0, help="Service-level target in seconds"),
    patience: float | None = typer.Option(None, "--patience", min=0.001,
                                          help="Mean customer patience in seconds (exponential); none = no abandonment"),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed, same result)"),
    warmup: float = typer.Option(0.0, "--warmup-hours", min=0.0, help="Hours simulated before measuring"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Simulate arrivals and handling on a simulated clock with the real routing decisions; print the figures."""
    from kefu.routing.erlang import average_speed_of_answer, erlang_c
    from kefu.routing.simulation import SimulationConfig
    from kefu.routing.simulation import simulate as run

    result = run(SimulationConfig(agents=agents, arrival_rate_per_hour=arrival_rate, aht_seconds=aht, hours=hours,
                                  sl_target_seconds=sl_target, patience_seconds=patience, seed=seed,
                                  warmup_hours=warmup))
    load = arrival_rate * aht / 3600.0
    result["offered_erlangs"] = round(load, 6)
    if patience is None and load < agents:
        result["erlang_c_p_wait"] = round(erlang_c(agents, load), 6)
        result["erlang_c_asa_seconds"] = round(average_speed_of_answer(agents, load, aht), 4)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for key, value in result.items():
        typer.echo(f"{key:>24}: {value}")
