"""The simulator drives the real engine: M/M/c runs agree with Erlang C, and runs are repeatable."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
from click.testing import CliRunner

from core.sim.cli import simulate as simulate_command
from core.sim.erlang import ErlangC
from core.sim.simulator import SimulationConfig, SimulationReport, simulate

# Waits in a queue are strongly correlated (one long busy period delays many customers), so a
# run's estimates spread far more than binomial ones would. Measured over 40 seeds of these very
# runs (ARRIVALS arrivals each), the standard deviations were, for 10 agents at 8 Erlangs:
# P(W>0) 0.011, ASA 8 % of its mean, service level 0.012, occupancy 0.004; for 3 agents at
# 2 Erlangs: 0.006, 4 %, 0.006 and 0.004 (an independent FCFS M/M/c model agrees). Each
# tolerance is about four standard deviations (ASA, skewed to the right, a little more), so a
# correct engine fails about once in 10,000 runs, while one agent too few or too many (P(W>0)
# of 0.67 or 0.24 at 8 Erlangs instead of 0.41; 0.89 or 0.17 at 2 Erlangs instead of 0.44)
# fails every time.
ARRIVALS = 60_000


@dataclass(frozen=True)
class Case:
    agents: int
    load: float
    p_wait: float
    asa_relative: float
    service_level: float
    occupancy: float = 0.02


ERLANG_CASES = [
    pytest.param(Case(10, 8.0, 0.045, 0.35, 0.045), id="10-agents-8-erlangs"),
    pytest.param(Case(3, 2.0, 0.025, 0.18, 0.025), id="3-agents-2-erlangs"),
]


def mmc(agents: int, load: float, *, seed: int = 1) -> SimulationConfig:
    """An M/M/c run of ARRIVALS expected arrivals; 100 s handle time."""
    handle = 100.0
    rate = load / handle
    return SimulationConfig(
        agents=agents,
        arrival_rate=rate,
        mean_handle_time=handle,
        duration=ARRIVALS / rate,
        seed=seed,
    )


@pytest.mark.parametrize("case", ERLANG_CASES)
def test_single_skill_agrees_with_erlang_c(case: Case) -> None:
    config = mmc(case.agents, case.load)
    report = simulate(config)
    predicted = config.erlang_c
    assert predicted is not None
    assert report.erlang_c == predicted
    assert report.abandoned == 0
    assert report.offered == report.answered + report.waiting
    assert report.p_wait is not None
    assert report.asa_seconds is not None
    assert report.service_level is not None
    assert report.p_wait == pytest.approx(predicted.p_wait, abs=case.p_wait)
    assert report.asa_seconds == pytest.approx(predicted.asa, rel=case.asa_relative)
    assert report.service_level == pytest.approx(predicted.service_level, abs=case.service_level)
    assert report.occupancy == pytest.approx(predicted.occupancy, abs=case.occupancy)


def test_idle_agents_answer_at_once() -> None:
    # 50 agents for 1 Erlang: waiting is astronomically unlikely (P(W>0) ~ 1e-55).
    config = SimulationConfig(agents=50, arrival_rate=0.05, mean_handle_time=20.0, duration=2000)
    report = simulate(config)
    assert report.offered > 0
    assert report.answered == report.offered - report.waiting
    assert report.p_wait == 0.0
    assert report.asa_seconds == 0.0
    assert report.service_level == 1.0
    assert report.max_queue_length == 0


def as_json(report: SimulationReport) -> str:
    data = report.to_dict()
    del data["wall_seconds"]
    return json.dumps(data, sort_keys=True)


def test_same_seed_same_numbers() -> None:
    config = SimulationConfig(
        agents=12,
        arrival_rate=0.2,
        mean_handle_time=50.0,
        duration=3000,
        skills=3,
        skills_per_agent=2,
        capacity=2,
        patience=40.0,
        accept_delay=2.0,
        seed=7,
    )
    first = simulate(config)
    assert as_json(first) == as_json(simulate(config))
    assert as_json(first) != as_json(simulate(replace(config, seed=8)))


def test_impatient_customers_abandon() -> None:
    # 5 agents offered 10 Erlangs: the queue grows until customers give up (mean patience 60 s).
    config = SimulationConfig(
        agents=5, arrival_rate=0.1, mean_handle_time=100.0, duration=5000, patience=60.0, seed=3
    )
    report = simulate(config)
    assert report.abandoned > 0
    assert report.answered > 0
    assert report.answered + report.abandoned + report.waiting == report.offered
    assert report.erlang_c is None
    assert report.occupancy > 0.9


def test_accept_delay_is_part_of_the_wait() -> None:
    config = SimulationConfig(
        agents=20, arrival_rate=0.05, mean_handle_time=20.0, duration=2000, accept_delay=3.0
    )
    report = simulate(config)
    assert report.answered > 0
    assert report.p_wait == 1.0
    assert report.asa_seconds == pytest.approx(3.0)
    assert report.service_level == 1.0


def test_skills_and_capacity() -> None:
    # 4 skills, 2 per agent, 2 conversations per agent: 40 capacity units for 4 Erlangs.
    config = SimulationConfig(
        agents=20,
        arrival_rate=0.2,
        mean_handle_time=20.0,
        duration=4000,
        skills=4,
        skills_per_agent=2,
        capacity=2,
        seed=5,
    )
    report = simulate(config)
    assert report.answered + report.waiting == report.offered
    assert report.waiting <= 2
    assert report.p_wait is not None and report.p_wait < 0.05
    assert report.occupancy == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize(
    "changes",
    [
        {"agents": 0},
        {"duration": 0},
        {"skills": 2, "skills_per_agent": 3},
        {"capacity": 0},
        {"patience": 0.0},
        {"accept_delay": -1.0},
    ],
)
def test_invalid_configs(changes: dict[str, object]) -> None:
    base = {"agents": 1, "arrival_rate": 1.0, "mean_handle_time": 1.0, "duration": 1.0}
    with pytest.raises(ValueError):
        SimulationConfig(**{**base, **changes})  # type: ignore[arg-type]


def test_erlang_prediction_only_for_mmc() -> None:
    config = mmc(4, 2.0)
    assert config.erlang_c == ErlangC(4, 0.02, 100.0, 20.0)
    assert replace(config, skills=2).erlang_c is None
    assert replace(config, capacity=2).erlang_c is None
    assert replace(config, patience=30.0).erlang_c is None
    assert replace(config, accept_delay=1.0).erlang_c is None


COMMON = ["--agents", "4", "--arrival-rate", "0.05", "--mean-handle-time", "60"]


def test_cli_json() -> None:
    args = [*COMMON, "--duration", "2000", "--patience", "120", "--seed", "2", "--json"]
    result = CliRunner().invoke(simulate_command, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {
        "offered",
        "answered",
        "abandoned",
        "p_wait",
        "asa_seconds",
        "service_level",
        "occupancy",
        "max_queue_length",
        "wall_seconds",
    } <= data.keys()
    assert data["offered"] == data["answered"] + data["abandoned"] + data["waiting"]


def test_cli_table() -> None:
    result = CliRunner().invoke(simulate_command, [*COMMON, "--duration", "2000"])
    assert result.exit_code == 0, result.output
    assert "offered" in result.output
    assert "Erlang C" in result.output


def test_cli_rejects_impossible_skills() -> None:
    args = [*COMMON, "--duration", "10", "--skills", "2", "--skills-per-agent", "3"]
    result = CliRunner().invoke(simulate_command, args)
    assert result.exit_code == 2
    assert "skills per agent" in result.output
