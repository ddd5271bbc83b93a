"""Bot benchmark: containment over the demo shop and the cost of one bot turn.

Runs the scripted simulation of ``kefu bot simulate`` several times, each on a fresh SQLite database, and
prints medians: containment of routine intents, handoffs lost (must be 0), and the latency of one bot turn
from claim to stored answer (claim, nlp, order lookups through the commerce cache, reply, memory, commit).

    .venv/bin/python bench/bot.py [--runs 3] [--per-intent 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kefu.commands.bot import run_simulation  # noqa: E402
from kefu.core.migrate import upgrade  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--per-intent", type=int, default=10)
    args = parser.parse_args()
    containment, lost, p50, p99, turns = [], [], [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kefu-bot-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            result = asyncio.run(run_simulation(url, args.per_intent, seed=7 + run))
        containment.append(result.overall)
        lost.append(result.handoffs_lost)
        p50.append(statistics.median(result.turn_ms))
        p99.append(percentile(result.turn_ms, 0.99))
        turns.append(len(result.turn_ms))
        print(f"run {run + 1}: containment {result.overall:.1%}, lost {result.handoffs_lost}, "
              f"turn p50 {p50[-1]:.1f} ms, p99 {p99[-1]:.1f} ms, {turns[-1]} turns", flush=True)
        if run == args.runs - 1:
            print("per intent (last run):")
            for intent, (total, contained, reasons) in sorted(result.containment().items()):
                why = ", ".join(f"{r}×{n}" for r, n in reasons.most_common()) or "-"
                print(f"  {intent:26s} {contained:3d}/{total:<3d} {contained / total:6.0%}  handoffs: {why}")
    print(f"cores: {os.cpu_count()}, runs: {args.runs}, conversations per run: {args.per_intent * 11} routine + 6 "
          f"escalations")
    print(f"median containment (routine intents): {statistics.median(containment):.1%}")
    print(f"handoffs lost (max over runs): {max(lost)}")
    print(f"median bot turn latency: p50 {statistics.median(p50):.1f} ms, p99 {statistics.median(p99):.1f} ms "
          f"(SQLite, demo shop connector, one node)")


if __name__ == "__main__":
    main()
