"""The simulator against queueing theory: with one queue and no abandonment, M/M/N is Erlang C.

Independent replications give the sampling error; the simulated means must lie within four standard errors
of the formula (plus a small allowance for the finite warm-up).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from kefu.routing.erlang import average_speed_of_answer, erlang_c, service_level
from kefu.routing.simulation import SimulationConfig, simulate

AGENTS, RATE, AHT = 10, 96.0, 300.0  # 8 erlangs on 10 agents: P(wait) ≈ 0.41, ASA ≈ 61 s


def test_simulated_asa_and_probability_of_waiting_match_erlang_c() -> None:
    runs = [simulate(SimulationConfig(agents=AGENTS, arrival_rate_per_hour=RATE, aht_seconds=AHT, hours=200,
                                      warmup_hours=10, seed=seed)) for seed in range(1, 6)]
    load = RATE * AHT / 3600
    for key, expected in (("asa_seconds", average_speed_of_answer(AGENTS, load, AHT)),
                          ("p_wait", erlang_c(AGENTS, load)),
                          ("service_level", service_level(AGENTS, load, AHT, 20.0))):
        values = [r[key] for r in runs]
        mean = statistics.fmean(values)
        error = statistics.stdev(values) / math.sqrt(len(values))
        assert abs(mean - expected) <= 4 * error + 0.01 * expected, (key, mean, expected, error)
    occupancy = statistics.fmean(r["occupancy"] for r in runs)
    assert abs(occupancy - load / AGENTS) < 0.01
    assert all(r["abandoned"] == 0 and r["answered"] == r["offered"] for r in runs)


def test_patience_makes_customers_abandon() -> None:
    quiet = simulate(SimulationConfig(agents=3, arrival_rate_per_hour=30, aht_seconds=300, hours=100, seed=3))
    impatient = simulate(SimulationConfig(agents=3, arrival_rate_per_hour=30, aht_seconds=300, hours=100, seed=3,
                                          patience_seconds=30))
    assert quiet["abandoned"] == 0 and impatient["abandoned"] > 0
    assert impatient["answered"] + impatient["abandoned"] == impatient["offered"]
    assert impatient["asa_seconds"] < quiet["asa_seconds"]  # the long waits abandoned instead


def test_same_seed_same_result() -> None:
    config = SimulationConfig(agents=3, arrival_rate_per_hour=30, aht_seconds=240, hours=10, seed=42)
    assert simulate(config) == simulate(config)


def test_the_cli_prints_one_json_object_with_the_stable_fields() -> None:
    kefu = Path(sys.executable).with_name("kefu")
    out = subprocess.run([str(kefu), "routing", "simulate", "--agents", "4", "--arrival-rate", "40", "--aht", "240",
                          "--hours", "5", "--sl-target", "20", "--patience", "90", "--seed", "7", "--json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    result = json.loads(out)
    for key in ("offered", "answered", "abandoned", "asa_seconds", "p_wait", "service_level", "occupancy"):
        assert key in result
    assert result["offered"] == result["answered"] + result["abandoned"] > 0
