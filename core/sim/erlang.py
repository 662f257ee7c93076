"""Erlang B and C for the M/M/c queue: Poisson arrivals, exponential handle times, ``c`` agents
each serving one customer at a time, an unbounded queue served first come first served, and no
abandonment. The simulator's one-skill runs are checked against these formulas.

Offered load ``A = arrival_rate * mean_handle_time`` is in Erlangs. Every function is computed
with the Erlang B recursion, so it is stable for thousands of agents (no factorials, no powers).
A queue with ``A >= c`` grows without bound: everyone waits, forever, and agents are always busy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/c/c: ``B(0) = 1``, ``B(k) = A·B(k-1) / (k + A·B(k-1))``."""
    _check(agents, load)
    b = 1.0
    for k in range(1, agents + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(agents: int, load: float) -> float:
    """Probability that an arrival waits at all, P(W > 0); 1.0 when ``load >= agents``."""
    _check(agents, load)
    if load >= agents:
        return 1.0
    b = erlang_b(agents, load)
    return agents * b / (agents - load * (1.0 - b))


def mean_wait(agents: int, arrival_rate: float, mean_handle_time: float) -> float:
    """Mean wait over all arrivals (ASA), ``C · h / (c - A)``; ``inf`` when unstable."""
    load = _load(arrival_rate, mean_handle_time)
    if load >= agents:
        return math.inf
    return erlang_c(agents, load) * mean_handle_time / (agents - load)


def service_level(
    agents: int, arrival_rate: float, mean_handle_time: float, threshold: float
) -> float:
    """P(W <= threshold) = ``1 - C · exp(-(c - A) · t / h)``; 0.0 when unstable."""
    if threshold < 0:
        raise ValueError("threshold must be >= 0")
    load = _load(arrival_rate, mean_handle_time)
    if load >= agents:
        return 0.0
    if mean_handle_time == 0:
        return 1.0
    tail = math.exp(-(agents - load) * threshold / mean_handle_time)
    return 1.0 - erlang_c(agents, load) * tail


def occupancy(agents: int, arrival_rate: float, mean_handle_time: float) -> float:
    """Mean fraction of agents busy, ``A / c``, capped at 1.0."""
    load = _load(arrival_rate, mean_handle_time)
    _check(agents, load)
    return min(1.0, load / agents)


@dataclass(frozen=True, slots=True)
class ErlangC:
    """All Erlang C figures for one staffing: the prediction a simulation is compared with."""

    agents: int
    arrival_rate: float
    mean_handle_time: float
    threshold: float
    """The service-level target, in seconds."""

    @property
    def load(self) -> float:
        return _load(self.arrival_rate, self.mean_handle_time)

    @property
    def p_wait(self) -> float:
        return erlang_c(self.agents, self.load)

    @property
    def asa(self) -> float:
        return mean_wait(self.agents, self.arrival_rate, self.mean_handle_time)

    @property
    def service_level(self) -> float:
        return service_level(self.agents, self.arrival_rate, self.mean_handle_time, self.threshold)

    @property
    def occupancy(self) -> float:
        return occupancy(self.agents, self.arrival_rate, self.mean_handle_time)


def _load(arrival_rate: float, mean_handle_time: float) -> float:
    if arrival_rate < 0 or mean_handle_time < 0:
        raise ValueError("arrival rate and handle time must be >= 0")
    return arrival_rate * mean_handle_time


def _check(agents: int, load: float) -> None:
    if agents < 1:
        raise ValueError("agents must be >= 1")
    if load < 0 or math.isnan(load):
        raise ValueError("load must be >= 0")
