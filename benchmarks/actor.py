"""The ``actor`` suite: what batching buys one ``RouterShard`` on a real local Ray.

What runs: one ``RouterShard`` actor (the production class, in a namespace of its own,
``usher-bench``, not detached, killed at the end) on a real PostgreSQL, without Redis (commit
publishing is off the commit path). Each row drives a tenant of its own: ``queues`` queues, each
needing one of ``queues`` skills; ``agents`` agents with two skills each and a capacity of
``capacity`` chats, all online.

Traffic: ``in_flight`` conversations run concurrently on one asyncio driver, each a loop of four
commands, one at a time: ``StartConversation`` (a random queue), ``AcceptOffer`` by the agent the
offer went to, ``RecordMessage`` from that agent, ``EndConversation``. Every command goes to the
actor and waits for its outcome, which is final (committed to the event log before the actor
answers). A conversation whose start found nobody free waits for the ``OfferMade`` that a later
command's events carry.

Two ways to reach the actor, one row each:

- ``batched``: through the front door's ``Dispatcher`` (``core.runtime.dispatcher``): while
  ``calls_in_flight`` calls are in flight the next commands wait and go together, up to
  ``max_batch`` a call.
- unbatched: one Ray call per command (``handle.submit.remote([command])``), all ``in_flight``
  calls pipelined. The actor runs dispatch calls one at a time, so each is its own engine run
  and its own commit.

Figures: ``commands_per_s`` = commands started in the measured window (after ``warmup_seconds``)
/ its length (``seconds``: nominally the row's; exactly the time between the two samples that
bound it, which a busy event loop may take late; every figure is over that same window);
per-command latency p50/p99 in µs, from the driver's submit to its outcome (for a batched
command: its wait for a batch, plus the batch's round trip); ``commands_per_call``, the batching
achieved; ``driver_cpu`` and ``shard_cpu``, the cores used by the driver process and by the
actor's process in the window (from ``/proc``; the store's processes are not counted);
``shard_cpu_s_per_1k_commands``, the actor process's CPU seconds in the window per 1,000 commands
started in it; ``events_per_commit`` and ``commits``, from the shard's event log counters
(``EventLog.statistics()``, read inside the actor at both ends of the window; -1 and 0 when the
actor does not have them where this suite looks).
The driver shares the machine with the actor and PostgreSQL, so at high rates it is part of what
is measured. Without a database URL an embedded PostgreSQL starts in a temporary directory; with
one, the suite deletes its tenants' rows at the end. An already initialised Ray is used as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg

from benchmarks import procstat
from benchmarks import store as store_suite
from benchmarks.core import Verdict, percentile
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.runtime.dispatcher import Dispatcher
from core.runtime.shard import Outcome
from core.store.migrate import migrate

NAMESPACE: Final = "usher-bench"
"""The Ray namespace of the suite's actor: never the production ``usher``."""
CHANNEL = "webchat"
OFFER_WAIT = 30.0
"""Seconds a conversation waits for an offer before the row fails (a safety net)."""

TARGET_BATCHED_PER_S = 20_000.0
TARGET_SPEEDUP = 5.0

Progress = Callable[[str], None]
Submit = Callable[[c.Command], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """One row of the suite: how commands reach the actor, and how long to measure."""

    batched: bool
    max_batch: int = 256
    """Commands per actor call at most (batched rows)."""
    in_flight: int = 256
    """Conversations driven concurrently: the commands waiting or in flight at any time."""
    calls_in_flight: int = 1
    """Batched rows: actor calls the dispatcher keeps in flight (the shard executes the next
    while the previous commits; several front doors do the same)."""
    seconds: float = 5.0
    warmup_seconds: float = 1.0
    agents: int = 100
    capacity: int = 4
    queues: int = 4
    seed: int = 1

    @property
    def label(self) -> str:
        return f"batched ≤{self.max_batch}" if self.batched else "one call per command"


def smoke(config: ActorConfig) -> ActorConfig:
    """The same row, briefly (``--quick``): a smoke run, not a measurement."""
    return dataclasses.replace(config, seconds=0.5, warmup_seconds=0.2)


@dataclass(frozen=True, slots=True)
class ActorResult:
    """One row of the report."""

    mode: str
    batched: bool
    max_batch: int
    in_flight: int
    calls_in_flight: int
    commands_per_s: float
    p50_us: float
    p99_us: float
    commands_per_call: float
    commands: int
    calls: int
    driver_cpu: float
    """Cores used by the driver (this process) in the measured window."""
    shard_cpu: float
    """Cores used by the actor's process in the measured window (-1: not measured)."""
    db_cpu: float
    """Cores used by PostgreSQL (all its processes) in the window (-1: not on this machine, or
    not readable)."""
    seconds: float
    shard_cpu_s_per_1k_commands: float = -1.0
    """CPU seconds of the actor's process per 1,000 commands, in the window (-1: not
    measured)."""
    commits: int = 0
    """Event log transactions the shard committed in the window (0: not measured)."""
    events_per_commit: float = -1.0
    """Events a commit in the window, on average (-1: not measured)."""


@dataclass(frozen=True, slots=True)
class ActorRun:
    """A row's result, and its per-command latencies in µs (ascending; for ``--plot``)."""

    result: ActorResult
    latencies_us: tuple[float, ...]


# --- traffic ----------------------------------------------------------------------------------


def setup_commands(tenant: str, config: ActorConfig) -> list[c.Command]:
    """The tenant, its skills and queues, and its agents, signed in."""
    skills = [f"s{i}" for i in range(config.queues)]
    commands: list[c.Command] = [c.ConfigureTenant(tenant=tenant)]
    commands += [c.DefineSkill(tenant=tenant, skill=s) for s in skills]
    commands += [
        c.ConfigureQueue(
            tenant=tenant,
            settings=m.QueueSettings(f"q{i}", requirements=(m.SkillRequirement(skill, 1),)),
        )
        for i, skill in enumerate(skills)
    ]
    for a in range(config.agents):
        own = {skills[a % len(skills)]: 5, skills[(a + 1) % len(skills)]: 5}
        profile = m.AgentProfile(f"a{a}", skills=own, capacity=float(config.capacity))
        commands.append(c.ConfigureAgent(tenant=tenant, profile=profile))
        commands.append(
            c.SetAgentStatus(tenant=tenant, agent_id=f"a{a}", status=m.AgentStatus.ONLINE)
        )
    return commands


@dataclass(slots=True)
class Books:
    """What the row measured: when each command started (``perf_counter``) and its latency
    in ns; the commands of the window are picked afterwards (``run_row``)."""

    start: float
    end: float
    latencies_ns: list[tuple[float, int]] = field(default_factory=list)


class Traffic:
    """The row's conversations: each a loop of start, accept, message, end (module docstring)."""

    def __init__(self, tenant: str, config: ActorConfig, submit: Submit, books: Books) -> None:
        self.tenant = tenant
        self.config = config
        self._submit = submit
        self._books = books
        self._offers: dict[str, asyncio.Future[tuple[str, str]]] = {}
        self._count = 0
        self.failures: list[str] = []

    async def run(self, worker: int) -> None:
        rng = random.Random(self.config.seed * 1_000_003 + worker)
        while time.perf_counter() < self._books.end:
            await self._conversation(rng)

    async def _conversation(self, rng: random.Random) -> None:
        self._count += 1
        conversation_id = f"c{self._count}"
        t = self.tenant
        waiting = asyncio.get_running_loop().create_future()
        self._offers[conversation_id] = waiting
        await self._run(
            c.StartConversation(
                tenant=t,
                conversation_id=conversation_id,
                channel=CHANNEL,
                customer_id=f"k{self._count}",
                queue_id=f"q{rng.randrange(self.config.queues)}",
            )
        )
        try:
            offer_id, agent_id = await asyncio.wait_for(waiting, OFFER_WAIT)
        finally:
            self._offers.pop(conversation_id, None)
        await self._run(c.AcceptOffer(tenant=t, offer_id=offer_id, agent_id=agent_id))
        await self._run(
            c.RecordMessage(
                message=m.MessageBody(text="hi"),
                tenant=t,
                conversation_id=conversation_id,
                sender=m.Sender.AGENT,
                agent_id=agent_id,
            )
        )
        await self._run(
            c.EndConversation(tenant=t, agent_id=agent_id, conversation_id=conversation_id)
        )

    async def _run(self, command: c.Command) -> None:
        began = time.perf_counter()
        started_ns = time.perf_counter_ns()
        outcome = await self._submit(command)
        elapsed = time.perf_counter_ns() - started_ns
        self._books.latencies_ns.append((began, elapsed))
        if outcome.failure is not None:
            self.failures.append(f"{type(command).__name__}: {outcome.failure.message}")
            raise RuntimeError(f"a {type(command).__name__} failed: {outcome.failure.message}")
        for event in outcome.events:
            if isinstance(event, ev.OfferMade):
                waiting = self._offers.get(event.conversation_id)
                if waiting is not None and not waiting.done():
                    waiting.set_result((event.offer_id, event.agent_ids[0]))


# --- measuring --------------------------------------------------------------------------------


class Unbatched:
    """One Ray call per command."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.calls = 0

    async def submit(self, command: c.Command) -> Outcome:
        self.calls += 1
        outcomes: list[Outcome] = await self._handle.submit.remote([command])
        return outcomes[0]


LogCounters = tuple[int, int, int]
"""The shard's event log: (commits, appends, events) so far."""


async def log_counters(handle: Any) -> LogCounters | None:
    """The actor's event log counters (``EventLog.statistics()``), or None if Ray or the actor
    will not give them (its private attributes are read: no API of the actor's offers them)."""

    def read(actor: Any) -> LogCounters | None:  # runs in the actor (pickled by value)
        log = getattr(getattr(actor, "_shard", None), "_log", None)
        statistics = getattr(log, "statistics", None)
        if statistics is None:
            return None
        figures = statistics()
        return (int(figures.commits), int(figures.appends), int(figures.events))

    try:
        found = await handle.__ray_call__.remote(read)
    except Exception:  # an older Ray without __ray_call__, or the attributes changed shape
        return None
    return found if isinstance(found, tuple) else None


async def run_row(
    handle: Any,
    config: ActorConfig,
    tenant: str,
    shard_pid: int | None,
    progress: Progress | None = None,
    db_pids: Callable[[], list[int]] = list,
) -> ActorRun:
    """Measure one row (see the module docstring) on tenant ``tenant`` of the actor ``handle``."""
    say = progress or (lambda _: None)
    if config.in_flight <= 0 or config.max_batch <= 0:
        raise ValueError("in_flight and max_batch must be positive")
    if config.seconds <= 0 or config.warmup_seconds < 0:
        raise ValueError("seconds must be positive, warmup_seconds not negative")
    if config.agents * config.capacity < 1 or config.queues < 1:
        raise ValueError("give at least one agent, one unit of capacity and one queue")
    say(f"{config.label}: setting up")
    for outcome in await handle.submit.remote(setup_commands(tenant, config)):
        if outcome.failure is not None:
            raise RuntimeError(f"setting up the tenant failed: {outcome.failure.message}")

    dispatcher = Dispatcher([handle], max_batch=config.max_batch, depth=config.calls_in_flight)
    unbatched = Unbatched(handle)
    submit: Submit = dispatcher.submit if config.batched else unbatched.submit
    start = time.perf_counter() + config.warmup_seconds
    books = Books(start=start, end=start + config.seconds)
    traffic = Traffic(tenant, config, submit, books)
    say(f"{config.label}: measuring {config.seconds:g} s")

    async def sample(at: float) -> tuple[float, int, int, int, int, LogCounters | None]:
        """The figures at ``at`` (or as soon after as the event loop gets to it: the window is
        from the first sample's time to the second's, for every figure)."""
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        figures = (
            time.perf_counter(),
            dispatcher.calls + unbatched.calls,
            procstat.cpu_ticks([os.getpid()]),
            procstat.cpu_ticks([shard_pid]) if shard_pid else 0,
            procstat.cpu_ticks(db_pids()),
        )
        return (*figures, await log_counters(handle))

    samplers = [asyncio.create_task(sample(books.start)), asyncio.create_task(sample(books.end))]
    workers = [asyncio.create_task(traffic.run(w)) for w in range(config.in_flight)]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in (*workers, *samplers):
            task.cancel()
        await asyncio.gather(*workers, *samplers, return_exceptions=True)
        raise
    (
        (t_0, calls_0, driver_0, shard_0, db_0, log_0),
        (t_1, calls_1, driver_1, shard_1, db_1, log_1),
    ) = await asyncio.gather(*samplers)
    latencies = sorted(ns for began, ns in books.latencies_ns if t_0 <= began < t_1)
    if not latencies:
        raise RuntimeError(f"no command completed in {config.seconds:g} s")
    commands = len(latencies)
    calls = max(1, calls_1 - calls_0)
    seconds = t_1 - t_0
    commits, events_per_commit = 0, -1.0
    if log_0 is not None and log_1 is not None:
        commits = log_1[0] - log_0[0]
        events_per_commit = round((log_1[2] - log_0[2]) / commits, 1) if commits else 0.0
    shard_s = (shard_1 - shard_0) / procstat.TICKS_PER_S
    return ActorRun(
        ActorResult(
            mode="batched" if config.batched else "unbatched",
            batched=config.batched,
            max_batch=config.max_batch if config.batched else 1,
            in_flight=config.in_flight,
            calls_in_flight=config.calls_in_flight if config.batched else config.in_flight,
            commands_per_s=round(commands / seconds, 1),
            p50_us=round(percentile(latencies, 0.50) / 1e3, 1),
            p99_us=round(percentile(latencies, 0.99) / 1e3, 1),
            commands_per_call=round(commands / calls, 1),
            commands=commands,
            calls=calls,
            driver_cpu=procstat.cores(driver_1 - driver_0, seconds),
            shard_cpu=procstat.cores(shard_1 - shard_0, seconds) if shard_pid else -1.0,
            db_cpu=procstat.cores(max(0, db_1 - db_0), seconds) if db_pids() else -1.0,
            seconds=round(seconds, 3),
            shard_cpu_s_per_1k_commands=round(shard_s / commands * 1e3, 3) if shard_pid else -1.0,
            commits=commits,
            events_per_commit=events_per_commit,
        ),
        tuple(ns / 1e3 for ns in latencies),
    )


# --- the suite --------------------------------------------------------------------------------


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """A local Ray for the duration (modest: 2 CPUs, no dashboard), unless one is initialised
    already (then it is used and left running)."""
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace=NAMESPACE,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def create_shard(name: str, database_url: str) -> Any:
    """A ``RouterShard`` for the suite: named ``name`` in ``NAMESPACE``, not detached, never
    restarted, and owning no stored tenant (so its warm-up loads nothing: it loads the suite's
    tenants on their first command)."""
    from core.runtime.actor import DEFAULT_PREFIX, RouterShard

    return RouterShard.options(  # type: ignore[attr-defined]
        name=name, namespace=NAMESPACE, max_restarts=0
    ).remote(name, database_url, None, DEFAULT_PREFIX, -1, 1)


async def shard_pid(handle: Any) -> int | None:
    """The actor's process id (None if Ray will not say)."""
    try:
        pid = await handle.__ray_call__.remote(lambda _self: os.getpid())
    except Exception:  # an older Ray without __ray_call__: go without the actor's CPU
        return None
    return int(pid)


async def postgres_pids(pool: asyncpg.Pool) -> Callable[[], list[int]]:
    """A function giving PostgreSQL's processes now, if it runs on this machine and its data
    directory is readable (else they are not measured: the function gives none)."""
    try:
        directory = await pool.fetchval("SHOW data_directory")
    except asyncpg.PostgresError:  # not a superuser
        return list
    pidfile = Path(directory) / "postmaster.pid"

    def pids() -> list[int]:
        try:
            return procstat.tree(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return []

    return pids


async def run_actor(
    configs: Sequence[ActorConfig], url: str | None, progress: Progress | None = None
) -> list[ActorRun]:
    """Measure every row against ``url`` (or an embedded PostgreSQL) on one actor; leave no rows
    behind in a given database."""
    import ray

    say = progress or (lambda _: None)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    runs: list[ActorRun] = []
    async with store_suite.database(url) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            say("starting Ray and the shard actor")
            with local_ray():
                handle = create_shard(f"{prefix}-shard", dsn)
                try:
                    await handle.health.remote()  # started before the clock runs
                    pid = await shard_pid(handle)
                    db = await postgres_pids(pool)
                    for i, config in enumerate(configs):
                        tenant = f"{prefix}-{i}{'b' if config.batched else 'u'}"
                        runs.append(await run_row(handle, config, tenant, pid, progress, db))
                finally:
                    ray.kill(handle, no_restart=True)
            if url:
                say("deleting the benchmark's rows")
                await store_suite._forget(pool, prefix)
        finally:
            await pool.close()
    return runs


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """The suite's headline: the best batched row against the unbatched one."""

    batched_per_s: float
    unbatched_per_s: float
    p50_us: float
    """Per-command latency of the best batched row."""
    p99_us: float
    speedup: float
    unbatched_p50_us: float
    unbatched_p99_us: float


def summarize(results: Sequence[ActorResult]) -> Summary:
    """The headline figures; needs at least one batched and one unbatched row."""
    batched = [r for r in results if r.batched]
    unbatched = [r for r in results if not r.batched]
    if not batched or not unbatched:
        raise ValueError("need a batched and an unbatched row")
    best = max(batched, key=lambda r: r.commands_per_s)
    plain = max(unbatched, key=lambda r: r.commands_per_s)
    return Summary(
        batched_per_s=best.commands_per_s,
        unbatched_per_s=plain.commands_per_s,
        p50_us=best.p50_us,
        p99_us=best.p99_us,
        speedup=round(best.commands_per_s / plain.commands_per_s, 2)
        if plain.commands_per_s
        else 0.0,
        unbatched_p50_us=plain.p50_us,
        unbatched_p99_us=plain.p99_us,
    )


def document(results: Sequence[ActorResult]) -> dict[str, Any]:
    """The JSON document: ``{"suite": "actor", <Summary fields>, "results": [rows]}``."""
    from benchmarks import report

    rows = report.to_document("actor", results)
    return {"suite": "actor", **dataclasses.asdict(summarize(results)), "results": rows["results"]}


def check_targets(summary: Summary) -> list[Verdict]:
    """The issue's targets for this suite."""
    return [
        Verdict(
            "batched commands/s (at least)",
            summary.batched_per_s,
            TARGET_BATCHED_PER_S,
            summary.batched_per_s >= TARGET_BATCHED_PER_S,
        ),
        Verdict(
            "batched / unbatched (at least, ×)",
            summary.speedup,
            TARGET_SPEEDUP,
            summary.speedup >= TARGET_SPEEDUP,
        ),
    ]
