"""``usher simulate``: a synthetic day of traffic through the real engine, as a table or JSON."""

from __future__ import annotations

import json
import math

import click
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from core.sim.simulator import SimulationConfig, SimulationReport
from core.sim.simulator import simulate as run_simulation


@click.command("simulate")
@click.option("--agents", type=click.IntRange(min=1), required=True, help="Agents online.")
@click.option(
    "--arrival-rate",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Poisson arrivals per second.",
)
@click.option(
    "--mean-handle-time",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Mean of the exponential handle time, seconds.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Simulated seconds.",
)
@click.option("--skills", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--skills-per-agent", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Conversations an agent holds at once.",
)
@click.option(
    "--patience",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Mean exponential patience, seconds; customers never abandon without it.",
)
@click.option(
    "--accept-delay",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds from an offer to its acceptance; accepted at once without it.",
)
@click.option(
    "--sl-threshold",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Service-level target wait, seconds.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def simulate(
    agents: int,
    arrival_rate: float,
    mean_handle_time: float,
    duration: float,
    skills: int,
    skills_per_agent: int,
    capacity: int,
    patience: float | None,
    accept_delay: float | None,
    sl_threshold: float,
    seed: int,
    as_json: bool,
) -> None:
    """Poisson arrivals and exponential handle times through the engine on a virtual clock."""
    try:
        config = SimulationConfig(
            agents=agents,
            arrival_rate=arrival_rate,
            mean_handle_time=mean_handle_time,
            duration=duration,
            skills=skills,
            skills_per_agent=skills_per_agent,
            capacity=capacity,
            patience=patience,
            accept_delay=accept_delay,
            sl_threshold=sl_threshold,
            seed=seed,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    report = run_simulation(config)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        Console().print(render(config, report))


def render(config: SimulationConfig, report: SimulationReport) -> Group:
    """The report as a table, with the Erlang C prediction beside it when the run is M/M/c."""
    predicted = report.erlang_c
    parts = [
        f"{config.agents} agents × capacity {config.capacity}",
        f"{config.skills} skills ({config.skills_per_agent} per agent)",
        f"{config.arrival_rate:g} arrivals/s",
        f"{config.mean_handle_time:g} s mean handle time",
    ]
    if config.patience is not None:
        parts.append(f"{config.patience:g} s mean patience")
    if config.accept_delay is not None:
        parts.append(f"accepted after {config.accept_delay:g} s")
    parts.append(f"{config.duration:g} s simulated, seed {config.seed}")
    heading = Text(", ".join(parts), style="bold")
    table = Table()
    table.add_column("measure")
    table.add_column("simulated", justify="right")
    if predicted is not None:
        table.add_column("Erlang C", justify="right")

    def row(name: str, value: str, expected: str = "") -> None:
        table.add_row(name, value, *([expected] if predicted is not None else []))

    threshold = f"{config.sl_threshold:g}"
    row("offered", f"{report.offered:,}")
    row("answered", f"{report.answered:,}")
    row("abandoned", f"{report.abandoned:,}")
    row("still waiting", f"{report.waiting:,}")
    row(
        "waited at all",
        _percent(report.p_wait),
        _percent(predicted.p_wait) if predicted else "",
    )
    row(
        "mean wait (ASA)",
        _seconds(report.asa_seconds),
        _seconds(predicted.asa) if predicted else "",
    )
    row(
        f"answered within {threshold} s",
        _percent(report.service_level),
        _percent(predicted.service_level) if predicted else "",
    )
    row(
        "occupancy",
        _percent(report.occupancy),
        _percent(predicted.occupancy) if predicted else "",
    )
    row("longest queue", f"{report.max_queue_length:,}")
    row("engine events", f"{report.engine_events:,}")
    row("wall time", f"{report.wall_seconds:.2f} s")
    return Group(heading, table)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return "unbounded" if math.isinf(value) else f"{value:.1f} s"
