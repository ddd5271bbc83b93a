"""Erlang C: the M/M/N queue's probability of waiting and average speed of answer (staffing reference)."""

from __future__ import annotations

import math


def erlang_c(agents: int, offered_erlangs: float) -> float:
    """Probability that a contact waits (all ``agents`` busy) with ``offered_erlangs`` = arrival rate × AHT."""
    if agents <= 0:
        return 1.0
    if offered_erlangs >= agents:
        return 1.0
    # Erlang B by the stable recurrence, then C from B.
    b = 1.0
    for n in range(1, agents + 1):
        b = offered_erlangs * b / (n + offered_erlangs * b)
    rho = offered_erlangs / agents
    return b / (1 - rho + rho * b)


def average_speed_of_answer(agents: int, offered_erlangs: float, aht_seconds: float) -> float:
    """Mean wait over all contacts: P(wait) × AHT / (N − A)."""
    if offered_erlangs >= agents:
        return math.inf
    return erlang_c(agents, offered_erlangs) * aht_seconds / (agents - offered_erlangs)


def service_level(agents: int, offered_erlangs: float, aht_seconds: float, target_seconds: float) -> float:
    """Share of contacts answered within ``target_seconds``."""
    if offered_erlangs >= agents:
        return 0.0
    return 1 - erlang_c(agents, offered_erlangs) * math.exp(-(agents - offered_erlangs) * target_seconds / aht_seconds)
