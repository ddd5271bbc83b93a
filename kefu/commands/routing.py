"""``kefu routing``: Routing engine: simulation."""

from __future__ import annotations

import typer

app = typer.Typer(help="Routing engine: simulation", no_args_is_help=True)
