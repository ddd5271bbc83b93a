"""``kefu bot``: The bot: flows and simulation."""

from __future__ import annotations

import typer

app = typer.Typer(help="The bot: flows and simulation", no_args_is_help=True)
