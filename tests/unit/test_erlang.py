"""Erlang B/C against published figures, closed forms and an exact rational computation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.sim.erlang import (
    ErlangC,
    erlang_b,
    erlang_c,
    mean_wait,
    occupancy,
    service_level,
)


def exact_erlang_c(agents: int, load: Fraction) -> Fraction:
    """The textbook definition, in exact rationals: an independent check on the recursion."""
    last = load**agents / math.factorial(agents) * agents / (agents - load)
    head = sum(load**k / math.factorial(k) for k in range(agents))
    return Fraction(last / (head + last))


def test_classic_call_centre_example() -> None:
    # The widely quoted worked example: 360 calls per half hour, 4 minute calls, 55 agents and a
    # 15 s target. Published: A = 48 Erlangs, occupancy 87.3 %, P(wait) 24 %, ASA 8.2 s, SL 85 %.
    rate, handle = 360 / 1800, 240.0
    figures = ErlangC(agents=55, arrival_rate=rate, mean_handle_time=handle, threshold=15.0)
    assert figures.load == pytest.approx(48.0)
    assert figures.occupancy == pytest.approx(0.873, abs=5e-4)
    assert figures.p_wait == pytest.approx(0.2387, abs=5e-5)
    assert figures.asa == pytest.approx(8.18, abs=5e-3)
    assert figures.service_level == pytest.approx(0.8459, abs=5e-5)


def test_small_centre_example() -> None:
    # 100 calls per half hour of 3 minutes (10 Erlangs), 14 agents, 20 s: P(wait) 17.4 %,
    # ASA 7.8 s, SL 88.8 % — the other staffing example everyone copies.
    figures = ErlangC(agents=14, arrival_rate=100 / 1800, mean_handle_time=180.0, threshold=20.0)
    assert figures.p_wait == pytest.approx(0.1741, abs=5e-5)
    assert figures.asa == pytest.approx(7.84, abs=5e-3)
    assert figures.service_level == pytest.approx(0.8884, abs=5e-5)


def test_erlang_b_table_values() -> None:
    # Erlang B tables: 1 % blocking is 4.46 Erlangs on 10 lines, 2 % is 2.28 on 6 lines.
    assert erlang_b(10, 4.46) == pytest.approx(0.01, abs=2e-4)
    assert erlang_b(6, 2.28) == pytest.approx(0.02, abs=2e-4)
    assert erlang_b(1, 1.0) == pytest.approx(0.5)


def test_closed_forms_for_one_and_two_agents() -> None:
    # M/M/1: P(wait) = rho and Wq = rho / (mu - lambda).
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert mean_wait(1, 0.5, 1.0) == pytest.approx(1.0)
    # M/M/2: P(wait) = 2 rho^2 / (1 + rho) with rho = A / 2.
    for load in (0.2, 1.0, 1.9):
        rho = load / 2
        assert erlang_c(2, load) == pytest.approx(2 * rho**2 / (1 + rho))


@pytest.mark.parametrize(
    ("agents", "load"),
    [(1, "1/3"), (3, "2"), (10, "8"), (14, "10"), (55, "48"), (120, "115.5")],
)
def test_recursion_matches_exact_definition(agents: int, load: str) -> None:
    exact = exact_erlang_c(agents, Fraction(load))
    assert erlang_c(agents, float(Fraction(load))) == pytest.approx(float(exact), rel=1e-12)


def test_stable_for_a_thousand_agents() -> None:
    # 1000! overflows a float; the recursion never forms it. The exact value is the reference.
    exact = float(exact_erlang_c(1000, Fraction(980)))
    assert erlang_c(1000, 980.0) == pytest.approx(exact, rel=1e-9)
    assert 0.0 < erlang_c(1000, 980.0) < 1.0
    assert math.isfinite(mean_wait(1000, 980 / 240, 240.0))


def test_unstable_queue() -> None:
    assert erlang_c(3, 3.0) == 1.0
    assert mean_wait(3, 1.0, 4.0) == math.inf
    assert service_level(3, 1.0, 4.0, 20.0) == 0.0
    assert occupancy(3, 1.0, 4.0) == 1.0


def test_no_traffic_never_waits() -> None:
    assert erlang_c(5, 0.0) == 0.0
    assert mean_wait(5, 0.0, 240.0) == 0.0
    assert service_level(5, 0.0, 240.0, 0.0) == 1.0


@pytest.mark.parametrize(("agents", "load"), [(0, 1.0), (2, -1.0), (2, math.nan)])
def test_invalid_arguments(agents: int, load: float) -> None:
    with pytest.raises(ValueError):
        erlang_c(agents, load)


@given(
    agents=st.integers(min_value=1, max_value=400),
    utilisation=st.floats(min_value=0.0, max_value=0.999),
    threshold=st.floats(min_value=0.0, max_value=600.0),
)
def test_properties(agents: int, utilisation: float, threshold: float) -> None:
    load = agents * utilisation
    p = erlang_c(agents, load)
    assert 0.0 <= erlang_b(agents, load) <= p <= 1.0
    # One more agent never makes waiting more likely.
    assert erlang_c(agents + 1, load) <= p + 1e-12
    sl = service_level(agents, load / 100.0, 100.0, threshold)
    assert 1.0 - p - 1e-12 <= sl <= 1.0
