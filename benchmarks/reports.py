"""The ``reports`` suite: reports over a year of rollups, and what keeping rollups costs the
projection, against a real PostgreSQL.

**Seeding (how the rollups come to exist).** The rows are not copied in: ``conversations``
synthetic conversations, spread over ``days`` days in Asia/Bangkok (more by day than by night,
more on weekdays), are written as engine events — built directly, without running the routing
engine, in the shapes the engine emits — and folded through the real fold
(``core.reports.rollup.RollupState``), day by day; each day's deltas go to the database with the
real upsert into facts (``core.store.rollups.apply``), compacted into rollup rows at once
(``compact``, as housekeeping does an hour later). The tenant has ``queues`` queues of five
designated agents each out of ``agents`` (in five departments), three channels and six tags. Of
the
conversations, 4 % stay with the bot, 5 % are abandoned while waiting (mean 60 s), 2 % end as
left messages and the rest are answered (waits, first responses and handle times exponential,
means 25 s, 12 s and 6 min) with two customer and two agent messages, 5 % after an agent
transfer, ending resolved, spam or ignored (85/5/10 %). Agents' statuses (sign-in, break,
away, sign-out on weekdays) are folded as status changes too, and their intervals COPYed into
``agent_sessions`` (the login log and statuses still going are read there). The events
themselves are not stored: reports never read them.

**Reports (what is measured).** ``core.reports.series.run`` — the function the ReportService
and ``usher report`` call (the SQL, its rows, figures and attendance; gRPC adds a constant) —
``samples`` times per report, one call after another, after one unmeasured call: every report
(overview, agents, queues, channels) over the last month by day and over the whole year by
month, plus three filtered ones that read the finest rows (the year's queues for two agents, its
overview for a tag and its agents for a department). ``report_p95_ms`` holds each p95.

**Projection overhead.** Two tenants run the same traffic through the real engine (the
``store`` suite's ``Tenant``: arrivals, accepted offers, messages, ends), ``projection_commands``
commands each, appended in batches of ``batch`` commands with ``EventLog.append`` one after the
other, alternating the tenants batch by batch. One appends the projection alone; the other
also folds the events and holds their facts, writing them with the next append once they are
a second old (and the rest at the end), as the shard does. ``projection_overhead`` is the
extra share of the second's time (``project`` + fold + append) over the first's (``project`` +
append); ``projection_overhead_small_batches`` is the
same with ``small_batch`` commands per append (a quarter of the commands), as under light load,
where each transaction's fixed costs weigh more.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg
import click
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks import report
from benchmarks.core import percentile
from benchmarks.store import StoreConfig, Tenant, _forget, database
from core.reports.calendar import Grouping
from core.reports.query import Filter, Kind, ReportQuery
from core.reports.rollup import RollupState
from core.reports.series import run
from core.routing import events as ev
from core.routing import model as m
from core.routing.explain import Decision
from core.runtime.shard import REPORTS_EVERY, REPORTS_ROWS
from core.store import rollups
from core.store.eventlog import EventLog
from core.store.migrate import migrate
from core.store.projection import Projection

Progress = Callable[[str], None]

ZONE: Final = "Asia/Bangkok"
CHANNELS: Final = ("webchat", "whatsapp", "line")
TAGS: Final = ("vip", "billing", "complaint", "sales", "returning", "urgent")
DEPARTMENTS: Final = 5
AGENTS_PER_QUEUE: Final = 5
HOURLY: Final = (
    1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 13, 11, 12, 13, 13, 12, 11, 10, 9, 8, 6, 4, 2,
)  # fmt: skip
"""Relative arrivals per local hour of the day."""
_DECISION: Final = Decision(0, "", "longest_idle", (), (), 0.0, "bench")


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    conversations: int = 1_000_000
    days: int = 365
    agents: int = 50
    queues: int = 10
    samples: int = 20
    projection_commands: int = 20_000
    batch: int = 100
    """Commands per append when measuring the projection (a shard's batch under load)."""
    small_batch: int = 5
    """Commands per append of the second, light-load measurement."""
    seed: int = 1


def smoke(config: ReportsConfig) -> ReportsConfig:
    """A smoke size that runs in seconds (a month of 2,000 conversations)."""
    return ReportsConfig(
        conversations=2_000,
        days=31,
        agents=20,
        queues=4,
        samples=3,
        projection_commands=400,
        batch=config.batch,
        small_batch=config.small_batch,
        seed=config.seed,
    )


@dataclass(frozen=True, slots=True)
class ReportsResult:
    conversations: int
    report_p95_ms: dict[str, float]
    projection_overhead: float
    days: int = 0
    rollup_rows: int = 0
    rollup_mib: float = 0.0
    events_folded: int = 0
    seed_seconds: float = 0.0
    projection_ms: dict[str, float] = field(default_factory=dict)
    """Total milliseconds of the two projection runs (``without``, ``with`` rollups)."""
    projection_events: int = 0
    projection_overhead_small_batches: float = 0.0
    """The same measurement with ``small_batch`` commands per append (light load)."""
    seeding: str = "synthetic engine events folded by core.reports.rollup; rows upserted"

    def document(self) -> dict[str, Any]:
        return {"suite": "reports", **{k: getattr(self, k) for k in self.__slots__}}


# --- seeding -------------------------------------------------------------------------------------


def _queue_agents(config: ReportsConfig, q: int) -> list[str]:
    return [f"a{(q * AGENTS_PER_QUEUE + i) % config.agents}" for i in range(AGENTS_PER_QUEUE)]


class _Traffic:
    """One conversation's events at a time, in the shapes the engine emits."""

    def __init__(self, tenant: str, config: ReportsConfig, rng: random.Random) -> None:
        self.tenant = tenant
        self.config = config
        self.rng = rng
        self.n = 0

    def conversation(self, start: float) -> list[ev.Event]:
        rng, t = self.rng, self.tenant
        self.n += 1
        cid = f"v{self.n}"
        q = rng.randrange(self.config.queues)
        queue = f"q{q}"
        channel = rng.choice(CHANNELS)
        tags = frozenset(rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2))))
        roll = rng.random()
        with_bot = roll < 0.10
        out: list[ev.Event] = [
            ev.ConversationStarted(
                tenant=t,
                at=start,
                conversation_id=cid,
                channel=channel,
                customer_id=f"k{self.n}",
                region="",
                language="en",
                priority=0,
                tags=tags,
                with_bot=with_bot,
                queue_id=None if with_bot else queue,
            ),
            self._message(cid, start, m.Sender.CUSTOMER, None, None),
        ]
        now = start
        if with_bot:
            now += rng.expovariate(1 / 30)
            out.append(self._message(cid, now, m.Sender.BOT, None, None))
            if roll < 0.04:
                now += rng.expovariate(1 / 60)
                out.append(self._ended(cid, now, m.CloseReason.CUSTOMER_LEFT, None, None))
                return self._forget(out, cid, now)
        out.append(
            ev.ConversationQueued(
                tenant=t,
                at=now,
                conversation_id=cid,
                queue_id=queue,
                reason=m.QueueReason.REQUESTED,
                priority=0,
                enqueued_at=now,
                plan=(),
                offsets=(),
                max_wait_at=None,
            )
        )
        agent = rng.choice(_queue_agents(self.config, q))
        if roll > 0.95:
            now += rng.expovariate(1 / 60)
            out.append(ev.ConversationAbandoned(tenant=t, at=now, conversation_id=cid))
            return self._forget(out, cid, now)
        if roll > 0.93:
            now += 300
            out.append(self._ended(cid, now, m.CloseReason.LEFT_MESSAGE, None, None))
            return self._forget(out, cid, now)
        offer = f"o{self.n}"
        out.append(
            ev.OfferMade(
                tenant=t,
                at=now,
                offer_id=offer,
                conversation_id=cid,
                agent_ids=(agent,),
                deadline=now + 30,
                broadcast=False,
                decision=_DECISION,
                channel=channel,
                queue_id=queue,
            )
        )
        now += rng.expovariate(1 / 25)
        out.append(
            ev.OfferAccepted(tenant=t, at=now, offer_id=offer, conversation_id=cid, agent_id=agent)
        )
        now += rng.expovariate(1 / 12)
        out.append(self._message(cid, now, m.Sender.AGENT, agent, agent))
        now += rng.expovariate(1 / 60)
        out.append(self._message(cid, now, m.Sender.CUSTOMER, None, agent))
        if rng.random() < 0.05:
            other = rng.choice(_queue_agents(self.config, q))
            now += rng.expovariate(1 / 60)
            out.append(
                ev.TransferResolved(
                    tenant=t,
                    at=now,
                    transfer_id=f"t{self.n}",
                    conversation_id=cid,
                    outcome=m.TransferOutcome.ACCEPTED,
                    from_agent=agent,
                    to_agent=other,
                    requested_at=now - 5,
                )
            )
            agent = other
        now += rng.expovariate(1 / 360)
        out.append(self._message(cid, now, m.Sender.AGENT, agent, agent))
        outcome = rng.choices((m.Outcome.RESOLVED, m.Outcome.SPAM, m.Outcome.IGNORED), (85, 5, 10))[
            0
        ]
        now += rng.expovariate(1 / 30)
        out.append(self._ended(cid, now, m.CloseReason.AGENT_ENDED, outcome, agent))
        return self._forget(out, cid, now)

    def _message(
        self, cid: str, at: float, sender: m.Sender, agent: str | None, owner: str | None
    ) -> ev.MessageRecorded:
        return ev.MessageRecorded(
            tenant=self.tenant,
            at=at,
            conversation_id=cid,
            sender=sender,
            agent_id=agent,
            body=m.MessageBody(text="hello"),
            owner=owner,
        )

    def _ended(
        self,
        cid: str,
        at: float,
        reason: m.CloseReason,
        outcome: m.Outcome | None,
        agent: str | None,
    ) -> ev.ConversationEnded:
        return ev.ConversationEnded(
            tenant=self.tenant,
            at=at,
            conversation_id=cid,
            reason=reason,
            outcome=outcome,
            agent_id=agent,
        )

    def _forget(self, out: list[ev.Event], cid: str, at: float) -> list[ev.Event]:
        out.append(ev.ConversationForgotten(tenant=self.tenant, at=at + 300, conversation_id=cid))
        return out


def _setup_events(tenant: str, config: ReportsConfig, at: float) -> list[ev.Event]:
    events: list[ev.Event] = [
        ev.TenantConfigured(tenant=tenant, at=at, settings=m.TenantSettings(time_zone=ZONE))
    ]
    for a in range(config.agents):
        profile = m.AgentProfile(
            agent_id=f"a{a}", name=f"Agent {a}", departments=frozenset({f"d{a % DEPARTMENTS}"})
        )
        events.append(ev.AgentConfigured(tenant=tenant, at=at, profile=profile))
    for q in range(config.queues):
        settings = m.QueueSettings(
            queue_id=f"q{q}",
            name=f"Queue {q}",
            designated_agents=frozenset(_queue_agents(config, q)),
        )
        events.append(ev.QueueConfigured(tenant=tenant, at=at, settings=settings))
    return events


def _sessions(tenant: str, config: ReportsConfig, first: dt.date) -> Iterator[tuple[Any, ...]]:
    """Each agent's weekdays: online 08:00, a break 12:00–12:45, away 15:00–15:10, offline
    17:30 (a few minutes' jitter each)."""
    tz = ZoneInfo(ZONE)
    rng = random.Random(config.seed + 1)
    for a in range(config.agents):
        agent = f"a{a}"
        for d in range(config.days):
            day = first + dt.timedelta(days=d)
            if day.weekday() >= 5:
                continue
            base = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
            marks = [
                ("online", 8 * 60, "10.0.0.1"),
                ("break", 12 * 60, ""),
                ("online", 12 * 60 + 45, ""),
                ("away", 15 * 60, ""),
                ("online", 15 * 60 + 10, ""),
                ("offline", 17 * 60 + 30, ""),
            ]
            times = [base + dt.timedelta(minutes=mm + rng.uniform(-5, 5)) for _, mm, _ in marks]
            for i, (status, _, address) in enumerate(marks):
                ended = times[i + 1] if i + 1 < len(marks) else None  # offline: open
                yield (tenant, agent, status, None, times[i], ended, address)


def _closed(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows with each offline interval ended by the agent's next sign-in (as the store
    keeps them: one open interval per agent)."""
    out: list[tuple[Any, ...]] = []
    by_agent: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_agent.setdefault(row[1], []).append(row)
    for agent_rows in by_agent.values():
        agent_rows.sort(key=lambda r: r[4])
        for row, after in zip(agent_rows, [*agent_rows[1:], None], strict=True):
            ended = row[5] if row[5] is not None or after is None else after[4]
            out.append((*row[:5], ended, row[6]))
    return out


def _status_events(rows: list[tuple[Any, ...]]) -> dict[dt.date, list[ev.Event]]:
    """The status changes the session rows stand for, by (UTC) day, in time order."""
    out: dict[dt.date, list[ev.Event]] = {}
    for tenant, agent, status, custom, started, _, address in sorted(rows, key=lambda r: r[4]):
        out.setdefault(started.astimezone(dt.UTC).date(), []).append(
            ev.AgentStatusChanged(
                tenant=tenant,
                at=started.timestamp(),
                agent_id=agent,
                status=m.AgentStatus(status),
                custom_status=custom,
                client_address=address,
            )
        )
    return out


async def seed(
    pool: asyncpg.Pool, tenant: str, config: ReportsConfig, say: Progress
) -> tuple[int, float]:
    """Write the tenant and its year of rollups; (events folded, seconds)."""
    started = time.perf_counter()
    tz = ZoneInfo(ZONE)
    today = dt.datetime.now(tz).date()
    first = today - dt.timedelta(days=config.days)
    at0 = dt.datetime(first.year, first.month, first.day, tzinfo=tz).timestamp() - 86_400
    state = RollupState(tenant)
    setup = _setup_events(tenant, config, at0)
    async with pool.acquire() as conn:
        settings = msgspec.json.encode(m.TenantSettings(time_zone=ZONE)).decode()
        await conn.execute(
            "INSERT INTO tenants (tenant_id, settings) VALUES ($1, $2::jsonb)", tenant, settings
        )
        now = dt.datetime.now(dt.UTC)
        await conn.copy_records_to_table(
            "departments",
            records=[(tenant, f"d{i}", f"Team {i}") for i in range(DEPARTMENTS)],
            columns=["tenant_id", "department_id", "name"],
        )
        await conn.copy_records_to_table(
            "agents",
            records=[
                (tenant, e.profile.agent_id, msgspec.json.encode(e.profile).decode(), now)
                for e in setup
                if isinstance(e, ev.AgentConfigured)
            ],
            columns=["tenant_id", "agent_id", "profile", "updated_at"],
        )
        await conn.copy_records_to_table(
            "queues",
            records=[
                (tenant, e.settings.queue_id, msgspec.json.encode(e.settings).decode(), now)
                for e in setup
                if isinstance(e, ev.QueueConfigured)
            ],
            columns=["tenant_id", "queue_id", "settings", "updated_at"],
        )
        await rollups.apply(conn, tenant, state.fold(setup))
        await rollups.compact(conn, tenant, ZONE, rollups.FOREVER)
        sessions = _closed(list(_sessions(tenant, config, first)))
        statuses = _status_events(sessions)
        await conn.copy_records_to_table(
            "agent_sessions",
            records=sessions,
            columns=[
                "tenant_id",
                "agent_id",
                "status",
                "custom_status",
                "started_at",
                "ended_at",
                "client_address",
            ],
        )
        traffic = _Traffic(tenant, config, random.Random(config.seed))
        rng = random.Random(config.seed + 2)
        hours = [h for h, weight in enumerate(HOURLY) for _ in range(weight)]
        folded = 0
        per_day = config.conversations / config.days
        made = 0
        for d in range(config.days):
            day = first + dt.timedelta(days=d)
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
            target = round(per_day * (d + 1)) - made
            starts = sorted(
                midnight + rng.choice(hours) * 3600 + rng.uniform(0, 3600) for _ in range(target)
            )
            events = [e for s in starts for e in traffic.conversation(s)]
            events += statuses.pop(day, [])
            made += target
            folded += len(events)
            await rollups.apply(conn, tenant, state.fold(events))
            await rollups.compact(conn, tenant, ZONE, rollups.FOREVER)
            if d % 30 == 29:
                say(f"seeded {made:,} conversations ({d + 1} days)")
        await conn.execute("VACUUM ANALYZE report_rollups")
        await conn.execute("VACUUM ANALYZE report_facts")
        await conn.execute("VACUUM ANALYZE agent_sessions")
    return folded, time.perf_counter() - started


# --- reports -------------------------------------------------------------------------------------


def report_queries(config: ReportsConfig) -> dict[str, ReportQuery]:
    tz = ZoneInfo(ZONE)
    today = dt.datetime.now(tz).date()
    end = dt.datetime(today.year, today.month, today.day, tzinfo=tz)
    month = end - dt.timedelta(days=30)
    year = end - dt.timedelta(days=config.days)
    out: dict[str, ReportQuery] = {}
    for kind in Kind:
        out[f"{kind.value}_month_by_day"] = ReportQuery(kind, month, end, Grouping.DAY)
        out[f"{kind.value}_year_by_month"] = ReportQuery(kind, year, end, Grouping.MONTH)
    out["queues_year_two_agents"] = ReportQuery(
        Kind.QUEUES, year, end, Grouping.MONTH, Filter(agents=("a1", "a7"))
    )
    out["overview_year_tag"] = ReportQuery(
        Kind.OVERVIEW, year, end, Grouping.WEEK, Filter(tag="vip")
    )
    out["agents_year_department"] = ReportQuery(
        Kind.AGENTS, year, end, Grouping.MONTH, Filter(department="d2")
    )
    return out


async def _p95(call: Callable[[], Awaitable[object]], samples: int) -> float:
    await call()
    took: list[int] = []
    for _ in range(samples):
        started = time.perf_counter_ns()
        await call()
        took.append((time.perf_counter_ns() - started) // 1_000)
    return percentile(sorted(took), 0.95) / 1e3


async def measure_reports(
    pool: asyncpg.Pool, tenant: str, config: ReportsConfig, say: Progress
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, query in report_queries(config).items():
        say(f"measuring {name}")

        async def call(q: ReportQuery = query) -> object:
            return await run(pool, tenant, q)

        out[name] = round(await _p95(call, config.samples), 2)
    return out


# --- projection overhead -------------------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    events: list[ev.Event]
    projection: Projection
    project_ns: int


def _batches(tenant: str, commands: int, batch: int) -> tuple[list[ev.Event], list[_Batch]]:
    """The same engine traffic for any tenant name: setup events, then batches of commands."""
    workload = Tenant(tenant, StoreConfig(writers=1, agents=20, queues=4), random.Random(7))
    setup = workload.setup()
    batches: list[_Batch] = []
    for _ in range(math.ceil(commands / batch)):
        events: list[ev.Event] = []
        projection = Projection()
        spent = 0
        for _ in range(batch):
            produced = workload.next()
            started = time.perf_counter_ns()
            projection.extend(workload.project(produced))
            spent += time.perf_counter_ns() - started
            events += produced
        batches.append(_Batch(events, projection, spent))
    return setup, batches


async def measure_projection(
    pool: asyncpg.Pool, prefix: str, commands: int, batch: int, say: Progress
) -> tuple[float, dict[str, float], int]:
    """(overhead, {without, with} in ms, events) of projecting the same traffic twice."""
    say(f"measuring the projection with and without rollups, {batch} commands per append")
    plain, rolled = f"{prefix}-plain{batch}", f"{prefix}-rollups{batch}"
    setup_a, batches_a = _batches(plain, commands, batch)
    setup_b, batches_b = _batches(rolled, commands, batch)
    log = EventLog(pool)
    epoch_a, epoch_b = await log.claim(plain), await log.claim(rolled)
    state = RollupState(rolled)
    await log.append(plain, epoch_a, setup_a, Projection())
    await log.append(rolled, epoch_b, setup_b, Projection(rollups={rolled: state.fold(setup_b)}))
    spent = {"without": 0, "with": 0}
    for a, b in zip(batches_a, batches_b, strict=True):
        started = time.perf_counter_ns()
        await log.append(plain, epoch_a, a.events, a.projection)
        spent["without"] += time.perf_counter_ns() - started + a.project_ns
        started = time.perf_counter_ns()
        state.hold(state.fold(b.events), time.monotonic())  # as the shard does (_stage)
        if state.due(time.monotonic(), REPORTS_EVERY, REPORTS_ROWS):
            b.projection.rollups = {rolled: state.take()}
        await log.append(rolled, epoch_b, b.events, b.projection)
        spent["with"] += time.perf_counter_ns() - started + b.project_ns
    started = time.perf_counter_ns()
    await log.append(rolled, epoch_b, [], Projection(rollups={rolled: state.take()}))
    spent["with"] += time.perf_counter_ns() - started
    await log.close()
    events = sum(len(b.events) for b in batches_a)
    overhead = spent["with"] / spent["without"] - 1
    return round(overhead, 4), {k: round(v / 1e6, 1) for k, v in spent.items()}, events


# --- the suite -----------------------------------------------------------------------------------


async def run_reports(
    config: ReportsConfig, url: str | None, progress: Progress | None = None
) -> ReportsResult:
    """Seed a tenant of its own, measure, and (against ``url``) delete its rows."""
    say = progress or (lambda _: None)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = f"{prefix}-reports"
    async with database(url) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            try:
                say(f"seeding {config.conversations:,} conversations over {config.days} days")
                folded, seconds = await seed(pool, tenant, config, say)
                rows = await pool.fetchval(
                    "SELECT count(*) FROM report_rollups WHERE tenant_id = $1", tenant
                )
                size = await pool.fetchval("SELECT pg_total_relation_size('report_rollups')")
                p95 = await measure_reports(pool, tenant, config, say)
                overhead, spent, events = await measure_projection(
                    pool, prefix, config.projection_commands, config.batch, say
                )
                small, _, _ = await measure_projection(
                    pool, prefix, config.projection_commands // 4, config.small_batch, say
                )
            finally:
                if url:
                    say("deleting the benchmark's rows")
                    await _forget(pool, prefix)
        finally:
            await pool.close()
    return ReportsResult(
        conversations=config.conversations,
        report_p95_ms=p95,
        projection_overhead=overhead,
        days=config.days,
        rollup_rows=int(rows),
        rollup_mib=round(size / 2**20, 1),
        events_folded=folded,
        seed_seconds=round(seconds, 1),
        projection_ms=spent,
        projection_events=events,
        projection_overhead_small_batches=small,
    )


def run_suite(
    config: ReportsConfig, url: str | None, progress: Progress | None = None
) -> ReportsResult:
    return asyncio.run(run_reports(config, url, progress))


@click.command("reports")
@click.option("--conversations", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--days", type=click.IntRange(min=31, max=730), default=365, show_default=True)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Calls measured per report.",
)
@click.option(
    "--projection-commands",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Engine commands projected with and without rollups.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Commands per append when measuring the projection.",
)
@click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="PostgreSQL to measure: pending migrations are applied, the benchmark's rows deleted "
    "afterwards [default: an embedded one in a temporary directory].",
)
@click.option(
    "--quick", is_flag=True, help="A smoke size (2,000 conversations over a month): seconds."
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
def reports(
    conversations: int,
    days: int,
    samples: int,
    projection_commands: int,
    batch: int,
    database_url: str | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Reports over a year of rollups (p95 per report over a month and a year, target 300 ms)
    and the projection's cost with rollups against without (target +10 %).

    How it is seeded and measured is described in benchmarks/reports.py.
    """
    config = ReportsConfig(
        conversations=conversations,
        days=days,
        samples=samples,
        projection_commands=projection_commands,
        batch=batch,
        seed=seed,
    )
    if quick:
        config = smoke(config)
    say = (lambda text: click.echo(f"reports: {text}", err=True)) if sys.stderr.isatty() else None
    try:
        result = run_suite(config, database_url, say)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"PostgreSQL: {' '.join(str(exc).split())}") from exc
    document = result.document()
    if out is not None:
        report.write_json(document, out)
    if as_json:
        click.echo(report.dumps(document))
        return
    table = Table(title="bench reports", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("report")
    table.add_column("p95 ms", justify="right")
    table.add_column("target", justify="right")
    for name, value in result.report_p95_ms.items():
        table.add_row(name, f"{value:,.1f}", "≤ 300" if value <= 300 else "MISSED ≤ 300")
    console = Console()
    console.print(table)
    console.print(
        f"  {result.conversations:,} conversations over {result.days} days: "
        f"{result.events_folded:,} events folded into {result.rollup_rows:,} rollup rows "
        f"({result.rollup_mib:,.1f} MiB) in {result.seed_seconds:,.0f} s"
    )
    console.print(
        f"  projection with rollups: {result.projection_overhead:+.1%} "
        f"({result.projection_ms['with']:,.0f} ms against {result.projection_ms['without']:,.0f}"
        f" ms for {result.projection_events:,} events, {config.batch} commands per append;"
        f" target ≤ +10 %); {result.projection_overhead_small_batches:+.1%} with"
        f" {config.small_batch} commands per append"
    )
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
