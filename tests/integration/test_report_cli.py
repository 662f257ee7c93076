"""``usher report`` on a real database: a report as JSON, as a table and as CSV; a refused
range; ``rebuild``."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
from pathlib import Path
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import asyncpg
from click.testing import CliRunner, Result

from core.reports.cli import report
from core.routing import ManualClock
from core.routing import commands as c
from core.routing import model as m
from core.runtime.shard import Shard
from tests.integration.test_report_rollups import offer_of, say

T = "acme"
BANGKOK = ZoneInfo("Asia/Bangkok")


async def invoke(database_url: str, *args: str) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, report, [*args, "--database-url", database_url], catch_exceptions=False
    )


async def _day(pool: asyncpg.Pool) -> None:
    """One conversation at 09:00 Bangkok on 2026-01-05: answered after 8 s, answered in 4 s."""
    start = dt.datetime(2026, 1, 5, 9, tzinfo=BANGKOK).timestamp()
    clock = ManualClock(start)
    shard = Shard("s0", pool, clock=clock)
    setup: list[c.Command] = [
        c.ConfigureTenant(tenant=T, settings=m.TenantSettings(time_zone="Asia/Bangkok")),
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("ann", name="Ann")),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q", name="Queue")),
        c.SetAgentStatus(tenant=T, agent_id="ann", status=m.AgentStatus.ONLINE),
        c.StartConversation(
            tenant=T, conversation_id="c1", channel="line", customer_id="k", queue_id="q"
        ),
    ]
    started = await shard.submit(setup)
    assert all(o.ok for o in started)
    clock.advance(8)
    await shard.submit([c.AcceptOffer(tenant=T, offer_id=offer_of(started, "c1"), agent_id="ann")])
    clock.advance(4)
    await shard.submit([say("c1", "ann")])
    await shard.stop()


async def test_reports_on_the_command_line(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    await _day(pool)
    done = await invoke(
        database_url,
        "overview",
        "--tenant",
        T,
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-07",
        "--json",
    )
    assert done.exit_code == 0, done.output
    document = json.loads(done.output)
    assert document["time_zone"] == "Asia/Bangkok"
    assert document["start"] == "2026-01-05T00:00:00+07:00"
    day1, day2, total = document["rows"]
    assert (day1["period"], day1["started"], day1["answered"]) == ("2026-01-05", 1, 1)
    assert (day1["wait_mean_s"], day1["first_response_mean_s"]) == (8.0, 4.0)
    assert (day2["period"], day2["started"]) == ("2026-01-06", 0)
    assert total["period"] == "total"

    table = await invoke(
        database_url, "agents", "--tenant", T, "--from", "2026-01-05", "--to", "2026-01-06"
    )
    assert table.exit_code == 0, table.output
    assert "Ann" in table.output
    agents = await invoke(
        database_url,
        "agents",
        "--tenant",
        T,
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-06",
        "--json",
    )
    ann, _ = json.loads(agents.output)["rows"]  # the day, and the total
    # ann signed in at 09:00 and is still online: the status still going counts to midnight
    assert (ann["agent"], ann["online_s"], ann["handled"]) == ("ann", 15 * 3600, 0)
    assert ann["first_sign_in"] == "2026-01-05T09:00:00+07:00"
    assert ann["last_online"] == "2026-01-06T00:00:00+07:00"

    out = tmp_path / "queues.csv"
    written = await invoke(
        database_url,
        "queues",
        "--tenant",
        T,
        "--from",
        "2026-01-05T00:00",
        "--to",
        "2026-01-06T00:00",
        "--csv",
        str(out),
    )
    assert written.exit_code == 0, written.output
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["period"], r["queue"], r["display_name"], r["answered"]) for r in rows] == [
        ("2026-01-05", "q", "Queue", "1"),
        ("total", "q", "Queue", "1"),
    ]

    charts_dir = tmp_path / "charts"
    plotted = await invoke(
        database_url,
        "queues",
        "--tenant",
        T,
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-06",
        "--plot",
        str(charts_dir),
    )
    assert plotted.exit_code == 0, plotted.output
    assert sorted(p.name for p in charts_dir.iterdir()) == [
        f"queues-{chart}.{ext}"
        for chart in ("first_response", "outcomes", "volume")
        for ext in ("png", "svg")
    ]
    assert (charts_dir / "queues-volume.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    ElementTree.fromstring((charts_dir / "queues-outcomes.svg").read_bytes())

    refused = await invoke(
        database_url, "overview", "--tenant", T, "--from", "2026-01-07", "--to", "2026-01-05"
    )
    assert refused.exit_code == 2
    assert "end_time" in refused.output

    rebuilt = await invoke(database_url, "rebuild", "--tenant", T)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "(Asia/Bangkok)" in rebuilt.output
    again = await invoke(
        database_url,
        "overview",
        "--tenant",
        T,
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-07",
        "--json",
    )
    assert json.loads(again.output) == document
