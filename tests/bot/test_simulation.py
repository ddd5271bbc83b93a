"""``kefu bot simulate``: the scripted containment run prints per-intent containment and loses no handoff."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from kefu.cli import app


def test_simulate_prints_containment_and_zero_lost_handoffs() -> None:
    result = CliRunner().invoke(app, ["bot", "simulate", "--per-intent", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "track_order" in result.output and "cancel_order" in result.output
    assert "lost 0" in result.output
    overall = float(re.search(r"overall containment of routine intents: ([\d.]+)%", result.output).group(1))
    assert overall >= 70.0, result.output
    assert "escalation scripts handed to people for the expected reason: 6/6" in result.output
