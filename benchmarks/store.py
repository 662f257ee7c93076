"""The ``store`` suite: what group commit buys the event log, against a real PostgreSQL.

What is written: each writer owns a tenant on an engine of its own (``agents`` agents with two
of ``skills`` skills each and a capacity of 3, ``queues`` queues needing one skill each, all
agents online, and conversations up to ``occupancy`` of the capacity, all stored before the
clock starts) and drives it one command at a time on a virtual clock (one second a command):
below ``occupancy`` a conversation arrives in a random queue; every offer is accepted by the
next command; otherwise an active conversation gets a message (customer and agent in turn) or,
one time in ``MESSAGES_PER_CONVERSATION`` + 1, ends; due timers fire as their own command.
Each command's events and their record rows (``project``) are then appended with ``await
EventLog.append`` -- what a shard does before acknowledging -- and the next command waits.

How: C such writers run concurrently on one event loop against one ``EventLog`` (one
connection writing, as in a shard process), first for ``warmup_seconds`` unmeasured, then for
``seconds``. An append is measured if it started in that window. Rows come in pairs: group
commit on (the default ``EventLog``: appends that queue while a batch is written go together in
the next transaction), and off (``max_batch_events=1``: one transaction per append, one after
the other).

Figures: ``appends_per_s`` (commands made durable a second) and ``events_per_s``; append
latency p50/p99 in ms (from the call to its return, so queueing for the writer is included);
``events_per_commit``, the mean events per transaction, from the number of distinct
transactions (``xmin``) among the measured event rows. Engine and projection time is in the
same loop, so at high C the Python process itself can become the limit. Without a database URL
the suite starts an embedded PostgreSQL in a temporary directory, removed afterwards; with
one, it applies pending migrations and deletes the rows of its own tenants at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from benchmarks.core import percentile
from core.routing import Engine, ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.store.embedded import EmbeddedPostgres
from core.store.eventlog import EventLog
from core.store.migrate import migrate
from core.store.projection import Projection, project

CHANNEL = "webchat"
STEP_SECONDS = 1.0
"""Virtual time between two commands of a tenant."""
AGENT_CAPACITY = 3
MESSAGES_PER_CONVERSATION = 7
"""Mean messages an active conversation gets before it ends."""
GROUP_COMMIT_BATCH = 2000
"""``max_batch_events`` with group commit on (the ``EventLog`` default)."""

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """One row of the suite: how many writers, group commit or not, how long to measure."""

    writers: int
    group_commit: bool = True
    seconds: float = 5.0
    warmup_seconds: float = 1.0
    agents: int = 12
    skills: int = 4
    queues: int = 4
    occupancy: float = 0.8
    """Conversations kept in each tenant (waiting + active), as a share of its capacity."""
    seed: int = 1


def smoke(config: StoreConfig) -> StoreConfig:
    """The same row, briefly (``--quick``): a smoke run, not a measurement."""
    return dataclasses.replace(config, seconds=0.3, warmup_seconds=0.1)


@dataclass(frozen=True, slots=True)
class StoreResult:
    """One row of the report; the first seven fields are the suite's JSON contract."""

    writers: int
    events_per_s: float
    appends_per_s: float
    p50_ms: float
    p99_ms: float
    events_per_commit: float
    group_commit: bool
    appends_per_commit: float
    appends: int
    events: int
    commits: int
    seconds: float


# --- one tenant's traffic ---------------------------------------------------------------------


class Tenant:
    """A tenant on an engine of its own, producing the events of one command at a time."""

    def __init__(self, tenant: str, config: StoreConfig, rng: random.Random) -> None:
        self.tenant = tenant
        self.config = config
        self.rng = rng
        self.clock = ManualClock()
        self.engine = Engine(self.clock)
        self.offers: list[tuple[str, str]] = []
        """(offer, agent) to accept, oldest first."""
        self.active: dict[str, tuple[str, int]] = {}
        """Conversation -> (its agent, messages so far)."""
        self.open: set[str] = set()
        self.started = 0
        self.target = max(1, int(config.occupancy * config.agents * AGENT_CAPACITY))

    def setup(self) -> list[ev.Event]:
        """Configure the tenant, its skills, queues and agents, sign the agents in, and bring
        conversations in up to the target: the steady state the measured commands keep."""
        t, cfg = self.tenant, self.config
        skills = [f"s{i}" for i in range(cfg.skills)]
        commands: list[c.Command] = [c.ConfigureTenant(tenant=t)]
        commands += [c.DefineSkill(tenant=t, skill=s) for s in skills]
        commands += [
            c.ConfigureQueue(
                tenant=t,
                settings=m.QueueSettings(
                    queue_id=f"q{i}",
                    requirements=(m.SkillRequirement(skills[i % cfg.skills], 1),),
                ),
            )
            for i in range(cfg.queues)
        ]
        for a in range(cfg.agents):
            profile = m.AgentProfile(
                agent_id=f"a{a}",
                skills={skills[a % cfg.skills]: 5, skills[(a + 1) % cfg.skills]: 5},
                capacity=float(AGENT_CAPACITY),
            )
            commands.append(c.ConfigureAgent(tenant=t, profile=profile))
            commands.append(
                c.SetAgentStatus(tenant=t, agent_id=profile.agent_id, status=m.AgentStatus.ONLINE)
            )
        events: list[ev.Event] = []
        for command in commands:
            events += self.engine.execute(command).events
        while len(self.open) < self.target or self.offers:
            events += self.next()
        return events

    def next(self) -> list[ev.Event]:
        """Move the clock on and run the next command (or the due timers); its events."""
        self.clock.advance(STEP_SECONDS)
        deadline = self.engine.next_deadline()
        events = self.engine.tick().events if deadline and deadline <= self.clock.now() else []
        events = events or self._command()
        if not events:
            raise RuntimeError(f"tenant {self.tenant!r}: a command changed nothing")
        self._follow(events)
        return events

    def project(self, events: list[ev.Event]) -> Projection:
        return project(self.engine.router(self.tenant), events)

    def _command(self) -> list[ev.Event]:
        if self.offers:
            offer_id, agent_id = self.offers.pop(0)
            return self._run(
                c.AcceptOffer(tenant=self.tenant, offer_id=offer_id, agent_id=agent_id)
            )
        if len(self.open) < self.target or not self.active:
            return self._arrive()
        conversation_id = self.rng.choice(list(self.active))
        agent_id, messages = self.active[conversation_id]
        if self.rng.random() * (MESSAGES_PER_CONVERSATION + 1) < 1:
            return self._run(
                c.EndConversation(
                    tenant=self.tenant, agent_id=agent_id, conversation_id=conversation_id
                )
            )
        self.active[conversation_id] = (agent_id, messages + 1)
        by_agent = messages % 2 == 1
        return self._run(
            c.RecordMessage(
                message=m.MessageBody(text="hi"),
                tenant=self.tenant,
                conversation_id=conversation_id,
                sender=m.Sender.AGENT if by_agent else m.Sender.CUSTOMER,
                agent_id=agent_id if by_agent else None,
            )
        )

    def _arrive(self) -> list[ev.Event]:
        self.started += 1
        n = self.started
        return self._run(
            c.StartConversation(
                tenant=self.tenant,
                conversation_id=f"c{n}",
                channel=CHANNEL,
                customer_id=f"k{n}",
                queue_id=f"q{self.rng.randrange(self.config.queues)}",
            )
        )

    def _run(self, command: c.Command) -> list[ev.Event]:
        return self.engine.execute(command).events

    def _follow(self, events: list[ev.Event]) -> None:
        """Keep the books the next commands are chosen from."""
        for e in events:
            match e:
                case ev.ConversationStarted():
                    self.open.add(e.conversation_id)
                case ev.OfferMade():
                    self.offers.append((e.offer_id, e.agent_ids[0]))
                case ev.OfferDeclined():
                    self.offers = [o for o in self.offers if o[0] != e.offer_id]
                case ev.OfferAccepted():
                    self.active[e.conversation_id] = (e.agent_id, 0)
                case ev.ConversationEnded() | ev.ConversationAbandoned():
                    self.active.pop(e.conversation_id, None)
                    self.open.discard(e.conversation_id)


# --- measuring --------------------------------------------------------------------------------


@dataclass(slots=True)
class Books:
    """What one writer measured: latencies, counts and the sequence range of its events."""

    latencies_ns: list[int] = field(default_factory=list)
    events: int = 0
    first_seq: int | None = None
    last_seq: int = 0


async def _write(
    log: EventLog, tenant: Tenant, epoch: int, start: float, end: float, books: Books
) -> None:
    """Append one command at a time until ``end``; book the appends started from ``start``."""
    while time.perf_counter() < end:
        events = tenant.next()
        projection = tenant.project(events)
        began = time.perf_counter()
        started_ns = time.perf_counter_ns()
        last = await log.append(tenant.tenant, epoch, events, projection)
        elapsed = time.perf_counter_ns() - started_ns
        if start <= began < end:
            books.latencies_ns.append(elapsed)
            books.events += len(events)
            if books.first_seq is None:
                books.first_seq = last - len(events) + 1
            books.last_seq = last


_COMMITS = """
SELECT count(DISTINCT e.xmin::text)
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(tenant_id, lo, hi)
JOIN events e ON e.tenant_id = r.tenant_id AND e.seq BETWEEN r.lo AND r.hi"""


async def run_row(
    pool: asyncpg.Pool, config: StoreConfig, prefix: str, progress: Progress | None = None
) -> StoreResult:
    """Measure one row (see the module docstring) with tenants named ``prefix``-…."""
    say = progress or (lambda _: None)
    if config.writers <= 0 or config.seconds <= 0 or config.warmup_seconds < 0:
        raise ValueError("writers and seconds must be positive, warmup_seconds not negative")
    mode = "group commit" if config.group_commit else "a transaction per append"
    say(f"{config.writers} writers, {mode}: setting up")
    batch = GROUP_COMMIT_BATCH if config.group_commit else 1
    log = EventLog(pool, max_batch_events=batch)
    rng = random.Random(config.seed)
    kind = "g" if config.group_commit else "s"
    tenants = [
        Tenant(f"{prefix}-{kind}{config.writers}-{i}", config, random.Random(rng.random()))
        for i in range(config.writers)
    ]
    epochs = [await log.claim(t.tenant) for t in tenants]
    for tenant, epoch in zip(tenants, epochs, strict=True):
        configured = tenant.setup()
        await log.append(tenant.tenant, epoch, configured, tenant.project(configured))

    say(f"{config.writers} writers, {mode}: measuring {config.seconds:g} s")
    books = [Books() for _ in tenants]
    start = time.perf_counter() + config.warmup_seconds
    end = start + config.seconds
    await asyncio.gather(
        *(
            _write(log, tenant, epoch, start, end, book)
            for tenant, epoch, book in zip(tenants, epochs, books, strict=True)
        )
    )
    await log.close()

    measured = [(t.tenant, b) for t, b in zip(tenants, books, strict=True) if b.first_seq]
    commits: int = await pool.fetchval(
        _COMMITS,
        [name for name, _ in measured],
        [b.first_seq for _, b in measured],
        [b.last_seq for _, b in measured],
    )
    latencies = sorted(ns for b in books for ns in b.latencies_ns)
    appends = len(latencies)
    events = sum(b.events for b in books)
    if not appends:
        raise RuntimeError(f"no append completed in {config.seconds:g} s")
    return StoreResult(
        writers=config.writers,
        events_per_s=round(events / config.seconds, 1),
        appends_per_s=round(appends / config.seconds, 1),
        p50_ms=round(percentile(latencies, 0.50) / 1e6, 3),
        p99_ms=round(percentile(latencies, 0.99) / 1e6, 3),
        events_per_commit=round(events / max(1, commits), 2),
        group_commit=config.group_commit,
        appends_per_commit=round(appends / max(1, commits), 2),
        appends=appends,
        events=events,
        commits=commits,
        seconds=config.seconds,
    )


# --- the suite --------------------------------------------------------------------------------


@asynccontextmanager
async def database(url: str | None) -> AsyncIterator[str]:
    """``url``, or an embedded PostgreSQL in a temporary directory for the duration."""
    if url:
        yield url
        return
    directory = Path(tempfile.mkdtemp(prefix="usher-bench-"))
    server = EmbeddedPostgres(directory)
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
            warnings.simplefilter("ignore", UserWarning)
            started = await asyncio.to_thread(server.start)
        yield started
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(directory, ignore_errors=True)


async def _forget(pool: asyncpg.Pool, prefix: str) -> None:
    """Delete every row of the tenants named ``prefix``-…."""
    tables = await pool.fetch(
        """SELECT table_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND column_name = 'tenant_id'
             AND table_name <> 'tenants'"""
    )
    pattern = f"{prefix}-%"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM tenants WHERE tenant_id LIKE $1", pattern)
        for row in tables:
            table = row["table_name"].replace('"', '""')
            await conn.execute(f'DELETE FROM "{table}" WHERE tenant_id LIKE $1', pattern)


async def run_store(
    configs: Sequence[StoreConfig], url: str | None, progress: Progress | None = None
) -> list[StoreResult]:
    """Measure every row against ``url`` (or an embedded server); leave no rows behind."""
    say = progress or (lambda _: None)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    results: list[StoreResult] = []
    async with database(url) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            try:
                for config in configs:
                    results.append(await run_row(pool, config, prefix, progress))
            finally:
                if url:
                    say("deleting the benchmark's rows")
                    await _forget(pool, prefix)
        finally:
            await pool.close()
    return results


def speedups(results: Sequence[StoreResult]) -> list[tuple[int, float]]:
    """(writers, appends/s with group commit over appends/s without) for each pair measured."""
    on = {r.writers: r for r in results if r.group_commit}
    off = {r.writers: r for r in results if not r.group_commit}
    return [
        (n, round(on[n].appends_per_s / off[n].appends_per_s, 2))
        for n in sorted(on.keys() & off.keys())
        if off[n].appends_per_s > 0
    ]
