"""The ``e2e`` suite: the whole system as a user runs it, driven through the Python SDK.

The system: ``usher serve`` (``python -m core.cli serve``) as a child process with ``shards``
Ray shard actors, PostgreSQL (durable: every command commits before it is acknowledged) and
Redis: embedded ones under a temporary data directory, or the URLs given.

By default ``usher serve`` starts its own Ray, as a user's does. With ``prestart_shards`` the
suite starts a local Ray itself, creates the shard actors exactly as ``usher serve`` would
(``core.runtime.actor.spawn``, same names and arguments), and runs ``usher serve
--ray-address`` against it: cluster mode, with Ray's processes outside the front door's tree.

The load, all through ``usher.client`` over gRPC: a tenant with ``skills`` skills and ``queues``
queues (queue i needs skill i), ``agents`` agents with two skills each and a capacity of
``capacity`` chats, each agent with its own channel, signed in and reading its event stream;
``gateways`` gateway clients, each also reading its outbound stream. Conversations arrive
open-loop (``benchmarks.loadgen``) at the offered rate, round robin over the gateways, in a
random queue, with a first customer message. The agent offered one accepts at once, sends a
message, keeps the conversation ``handle_ms``, and ends it.

Figures of a step (one offered rate, ``seconds`` long):

- ``routed_per_s``: conversations routed (AcceptOffer answered, the conversation ACTIVE) a
  second, counted in the window shifted by the step's median arrival→routed time
  (``Books.count_routed``: so that a step keeping up routes what arrived, whatever its latency).
- ``rpcs_per_s``: unary calls of the workload (StartConversation, AcceptOffer, SendMessage,
  EndConversation) answered without error in the window, a second; the streams are not counted.
- arrival→offer (``enqueue_to_offer``): from the conversation's *intended* arrival time (so a
  late start counts) to the offer reaching the agent's stream. accept→assigned: from sending
  AcceptOffer to its answer. p50, p99 and p99.9 in ms, over the conversations that arrived in
  the window.
- errors: failed calls, conversations shed (too many in progress), conversations not routed by
  the end of the drain, and event streams the server cut during the window (each counted once,
  by kind in ``error_kinds``).
- CPU, in cores (1.0 = one core busy) over the window, from ``/proc``: the front door (``usher
  serve`` and every process under it that is not Ray's: its worker processes, if any), Ray (its
  processes and the shard actors; ``shards``: the shard actors alone), the store (embedded
  PostgreSQL and Redis; -1 when given by URL), and the load generator (this process).
  ``frontdoor_cpu_ms_per_conversation``: the front door's CPU time in the window over the
  conversations routed in it (the cost of a whole conversation in a steady state: its start,
  offer, accept, messages and end).
- memory (measured run): resident memory of each process, sampled every ~10 s (more often in
  runs under 100 s) and at the end, in groups: the front door's processes, each shard actor
  (titled ``ray::RouterShard``), Ray's own processes, PostgreSQL, Redis; ``server`` is the front
  door, the shards and Ray together. Start, end, peak, and growth in MiB/min by least squares
  over the samples after the first minute (over all of them in a run too short for that).

With ``ramp``, rates rise geometrically until a step falls behind (it routed under 95 % of what
actually arrived in its window, left conversations unrouted, or failed over 1 %); the peak is the
best routed rate of a step that kept up, and the measured run is then held at ``peak_share`` of
it. Offers for conversations given up on (not routed by the end of a drain) are accepted and
ended at once, so a ramp's backlog does not hold agents in the measured run; when the last step
fell behind, the measured run starts once none of the tenant's conversations waits any more
(read from the record tables; at most ``SETTLE_LIMIT`` s), since its new arrivals would
otherwise queue behind that backlog. In the same run
the no-op baseline (``loadgen.baseline``) finds the request rate of a ``grpc.aio`` server doing
nothing, over as many channels as the load generator opens; the report gives the ratio of
routed conversations, and of the workload's unary calls (``rpc_ratio``), to it. Everything
shares this machine's cores.

``workers``: ``usher serve --workers N`` (front-door processes), passed only when this
``usher serve`` has the option (its ``--help`` is read at run time).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from usher.client import AdminClient, AgentClient, GatewayClient, UsherError
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2, routing_pb2, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_service_pb2 as conv_svc

from benchmarks import loadgen, procstat
from benchmarks.core import Verdict
from core.store import credentials
from core.store.embedded import EmbeddedPostgres, EmbeddedRedis
from core.store.migrate import migrate

CHANNEL = "whatsapp"
READY_WAIT = 120.0
"""Seconds ``usher serve`` has to print that it is ready (a safety net)."""
STOP_WAIT = 30.0

TARGET_PEAK_PER_S = 300.0
TARGET_P99_MS = 50.0
TARGET_GROWTH_MIB_PER_MIN = 2.0

SHARD_TITLE = "ray::RouterShard"
"""How a shard actor's process is titled (its class name); ``ray::RouterShard.submit`` too."""
GROUPS = ("frontdoor", "shards", "ray", "postgres", "redis")
"""The process groups measured; ``ray`` is Ray's own processes (without the shards)."""
SETTLE_S = 60.0
"""Memory growth is fitted to the samples after this many seconds of the measured run."""
MEMORY_INTERVAL_S = 10.0
SETTLE_LIMIT = 120.0
"""The longest wait for a ramp's backlog to drain before the measured run starts anyway."""

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class E2EConfig:
    """One run of the suite."""

    rate: float = 100.0
    """Offered conversations a second of the measured run (without ``ramp``)."""
    seconds: float = 20.0
    """Length of the measured run."""
    ramp: bool = False
    ramp_start: float = 50.0
    ramp_factor: float = 1.5
    ramp_steps: int = 10
    ramp_seconds: float = 5.0
    peak_share: float = 0.8
    agents: int = 100
    skills: int = 4
    queues: int = 4
    capacity: int = 4
    gateways: int = 2
    handle_ms: float = 200.0
    shards: int = 2
    prestart_shards: bool = False
    baseline: bool = True
    baseline_start: float = 500.0
    baseline_factor: float = 1.5
    baseline_steps: int = 10
    baseline_seconds: float = 3.0
    drain_seconds: float = 10.0
    workers: int | None = None
    """``usher serve --workers`` (None: not passed, the server's default)."""
    database_url: str | None = None
    redis_url: str | None = None
    seed: int = 1


def smoke(config: E2EConfig) -> E2EConfig:
    """A few seconds end to end (``--quick``): a smoke run, not a measurement."""
    return dataclasses.replace(
        config,
        rate=min(config.rate, 20.0),
        seconds=2.0,
        ramp_start=10.0,
        ramp_factor=2.0,
        ramp_steps=2,
        ramp_seconds=1.0,
        agents=min(config.agents, 8),
        handle_ms=50.0,
        baseline_start=200.0,
        baseline_factor=2.0,
        baseline_steps=2,
        baseline_seconds=0.5,
        drain_seconds=5.0,
    )


@dataclass(frozen=True, slots=True)
class E2EStep:
    """One offered rate held for ``seconds``: a row of the table."""

    offered_per_s: float
    routed_per_s: float
    arrived_per_s: float
    """Conversations that actually arrived (Poisson: the offered rate give or take)."""
    rpcs_per_s: float
    """Unary calls of the workload answered without error in the window, a second."""
    enqueue_to_offer_p50_ms: float
    enqueue_to_offer_p99_ms: float
    enqueue_to_offer_p999_ms: float
    accept_to_assigned_p50_ms: float
    accept_to_assigned_p99_ms: float
    errors: int
    unrouted: int
    frontdoor_cpu: float
    frontdoor_cpu_ms_per_conversation: float
    """Front-door CPU ms (all its processes) in the window / conversations routed in it (0:
    none routed)."""
    ray_cpu: float
    """Ray's processes and the shards."""
    shards_cpu: float
    store_cpu: float
    loadgen_cpu: float
    lag_p99_ms: float
    seconds: float

    @property
    def kept_up(self) -> bool:
        """Routed (nearly) all that arrived, none left unrouted, errors under 1 %. Measured
        against arrivals, not the offered rate, so Poisson luck is not read as falling behind."""
        arrived = self.arrived_per_s * self.seconds
        return (
            self.routed_per_s >= loadgen.KEPT_UP * self.arrived_per_s
            and self.unrouted == 0
            and self.errors <= 0.01 * arrived
        )


@dataclass(frozen=True, slots=True)
class Memory:
    """Server resident memory over the measured run, in MiB (``MemoryReport``'s ``server``)."""

    start_mib: float
    end_mib: float
    max_mib: float
    growth_mib_per_min: float
    samples: int


@dataclass(frozen=True, slots=True)
class GroupMemory:
    """A process group's resident memory over the measured run, in MiB (the sum of its
    processes at each sample)."""

    group: str
    processes: int
    """How many it had at the end."""
    start_mib: float
    end_mib: float
    max_mib: float
    growth_mib_per_min: float


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """One process's resident memory over the measured run, in MiB (0 while it was not
    there)."""

    group: str
    pid: int
    title: str
    start_mib: float
    end_mib: float
    max_mib: float
    growth_mib_per_min: float


@dataclass(frozen=True, slots=True)
class MemoryReport:
    """Resident memory of the server's and the stores' processes over the measured run."""

    interval_s: float
    samples: int
    growth_after_s: float
    """Growth is fitted over the samples from this second of the run on: ``SETTLE_S`` (the
    first minute, warm-up, is left out), or 0 when the run was too short for that."""
    groups: dict[str, GroupMemory]
    """``frontdoor``, ``shards``, ``ray`` (Ray's own processes), ``postgres``, ``redis``,
    and ``server`` (the front door, the shards and Ray)."""
    processes: tuple[ProcessMemory, ...]


@dataclass(frozen=True, slots=True)
class E2EResult:
    """The run: the measured step, the ramp, the baseline, and the headline figures."""

    duration_s: float
    offered_per_s: float
    routed_per_s: float
    enqueue_to_offer_ms: loadgen.Percentiles
    """arrival→offer: from the intended arrival time (module docstring)."""
    accept_to_assigned_ms: loadgen.Percentiles
    errors: int
    error_kinds: dict[str, int]
    baseline_rps: float
    ratio_to_baseline: float
    """routed/s ÷ the no-op baseline's requests/s."""
    rpcs_per_s: float
    rpc_ratio: float
    """rpcs/s ÷ the no-op baseline's requests/s (0: no baseline)."""
    frontdoor_cpu_ms_per_conversation: float
    peak_routed_per_s: float | None
    peak_share: float | None
    """With a ramp: the measured run's offered rate as a share of the peak."""
    peak_kept_up: bool | None
    """With a ramp: whether the peak is a step that kept up (else no step did, and it is the
    best routed rate of any)."""
    ramp_fell_behind: bool | None
    """With a ramp: whether a step fell behind (else the ramp ran out of steps, and the peak is
    only a lower bound)."""
    stale_offers: int
    """Offers for conversations given up on, accepted and ended at once (whole run)."""
    stale_failures: int
    """Of those, how many could not be accepted or ended (not counted in ``errors``)."""
    cpu_cores: dict[str, float]
    """Of the measured run: frontdoor, shards, ray (with the shards), server (front door and
    Ray), store, loadgen."""
    server_memory: Memory
    memory: MemoryReport
    steps: tuple[E2EStep, ...]
    """The ramp, then the measured run (the last)."""
    baseline_steps: tuple[loadgen.Step, ...]
    setup: dict[str, Any]


@dataclass(frozen=True, slots=True)
class E2ERun:
    """The result, and the latencies (ms, ascending) of the measured run and of the baseline's
    best step, for ``--plot``."""

    result: E2EResult
    enqueue_to_offer_ms: tuple[float, ...]
    accept_to_assigned_ms: tuple[float, ...]
    baseline_ms: tuple[float, ...]


def document(result: E2EResult) -> dict[str, Any]:
    """The JSON document: ``{"suite": "e2e", <E2EResult fields>}``, each step with its
    ``kept_up``."""
    body = dataclasses.asdict(result)
    for key in ("enqueue_to_offer_ms", "accept_to_assigned_ms"):
        body[key] = {k: v for k, v in body[key].items()}
    for row, step in zip(body["steps"], result.steps, strict=True):
        row["kept_up"] = step.kept_up
    return {"suite": "e2e", **body}


def check_targets(result: E2EResult) -> list[Verdict]:
    """The issue's targets that this run speaks to: the peak (the measured run's routed rate
    without a ramp), both p99s and the errors of the measured run, and, in a run long enough to
    fit growth after the first minute, the server's memory growth."""
    at = f" at {result.peak_share:.0%} of peak" if result.peak_share is not None else ""
    peak = result.peak_routed_per_s
    if peak is None:
        name, value = "routed conversations/s (at least; no --ramp)", result.routed_per_s
    elif result.peak_kept_up:
        name, value = "peak routed conversations/s (at least)", peak
    else:
        name, value = "peak routed conversations/s (at least; no step kept up)", peak
    ok = value >= TARGET_PEAK_PER_S and result.peak_kept_up is not False
    verdicts = [Verdict(name, value, TARGET_PEAK_PER_S, ok)]
    for name, p in (
        ("arrival→offer", result.enqueue_to_offer_ms),
        ("accept→assigned", result.accept_to_assigned_ms),
    ):
        ok = p.samples > 0 and p.p99 <= TARGET_P99_MS
        verdicts.append(Verdict(f"p99 {name} ms{at}", p.p99, TARGET_P99_MS, ok))
    verdicts.append(Verdict(f"errors{at}", result.errors, 0, result.errors == 0))
    if result.memory.growth_after_s > 0:
        growth = result.memory.groups["server"].growth_mib_per_min
        verdicts.append(
            Verdict(
                "server memory growth MiB/min after the first minute (at most)",
                growth,
                TARGET_GROWTH_MIB_PER_MIN,
                growth <= TARGET_GROWTH_MIB_PER_MIN,
            )
        )
    return verdicts


# --- the system --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class System:
    """A running ``usher serve`` and what it stands on; the process ids to measure."""

    target: str
    database_url: str
    serve: asyncio.subprocess.Process
    log: Path
    postgres_pids: Callable[[], list[int]]
    redis_pids: Callable[[], list[int]]
    ray_outside: bool
    """Ray runs in this process's tree (prestarted shards), not under ``usher serve``."""
    workers: int | None = None
    """``--workers`` as passed to ``usher serve`` (None: not passed)."""
    handles: list[Any] = field(default_factory=list)

    def store_pids(self) -> list[int]:
        return self.postgres_pids() + self.redis_pids()

    def processes(self) -> dict[str, dict[int, str]]:
        """The processes to measure now, by group (``GROUPS``): each pid with its command line.

        The front door is ``usher serve`` and every process under it that is neither Ray's (a
        Ray process and all under it are Ray's: ``shards`` if titled ``SHARD_TITLE``, else
        ``ray``) nor a store's. With prestarted shards, Ray's processes are under this one."""
        kids = procstat.children()
        found: dict[str, dict[int, str]] = {g: {} for g in GROUPS}
        for pid in self.postgres_pids():
            found["postgres"][pid] = procstat.cmdline(pid)
        for pid in self.redis_pids():
            found["redis"][pid] = procstat.cmdline(pid)
        stores = set(found["postgres"]) | set(found["redis"])

        def ray(root: int) -> None:
            for pid in procstat.tree(root, kids):
                if pid not in stores:
                    command = procstat.cmdline(pid)
                    found["shards" if command.startswith(SHARD_TITLE) else "ray"][pid] = command

        todo = [self.serve.pid] if self.serve.returncode is None else []
        while todo:
            pid = todo.pop()
            command = procstat.cmdline(pid)
            if pid in stores or not command:
                continue
            if procstat.is_ray(command):
                ray(pid)
                continue
            found["frontdoor"][pid] = command
            todo.extend(kids.get(pid, ()))
        if self.ray_outside:
            for pid in kids.get(os.getpid(), ()):
                if pid != self.serve.pid and procstat.is_ray(procstat.cmdline(pid)):
                    ray(pid)
        return found


def _postgres_pids(data_dir: Path) -> Callable[[], list[int]]:
    pidfile = data_dir.resolve() / "postgres" / "postmaster.pid"

    def pids() -> list[int]:
        try:
            return procstat.tree(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return []

    return pids


def _redis_pids(url: str, data_dir: Path) -> Callable[[], list[int]]:
    """The embedded Redis: by its pid file in the data directory, else by its title, which
    names its socket."""
    pidfile = data_dir.resolve() / "redis" / "redis.pid"
    socket_path = url.removeprefix("unix://") if url.startswith("unix://") else None
    found: list[int] = []

    def pids() -> list[int]:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            pass
        else:
            if "redis" in procstat.cmdline(pid):
                return [pid]
        if socket_path and not found:
            found.extend(procstat.find(f"unixsocket:{socket_path}"))
        return [pid for pid in found if procstat.cmdline(pid)]

    return pids


@contextlib.asynccontextmanager
async def running_system(config: E2EConfig, say: Progress) -> AsyncIterator[System]:
    """Start everything (see the module docstring) and stop it all afterwards."""
    import ray

    data_dir = Path(tempfile.mkdtemp(prefix="usher-bench-e2e-"))
    stack = contextlib.AsyncExitStack()
    try:
        async with stack:
            say("starting PostgreSQL and Redis")
            url = config.database_url
            postgres_parts: list[Callable[[], list[int]]] = []
            redis_parts: list[Callable[[], list[int]]] = []
            if not url:
                postgres = EmbeddedPostgres(data_dir)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    url = await asyncio.to_thread(postgres.start)
                stack.push_async_callback(asyncio.to_thread, postgres.stop)
                postgres_parts.append(_postgres_pids(data_dir))
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            redis_url = config.redis_url
            if not redis_url and config.prestart_shards:
                redis = EmbeddedRedis(data_dir)
                redis_url = await asyncio.to_thread(redis.start)
                stack.push_async_callback(asyncio.to_thread, redis.stop)
            if redis_url and not config.redis_url:
                redis_parts.append(_redis_pids(redis_url, data_dir))

            args = [
                "--http-port",
                "-1",
                "--data-dir",
                str(data_dir),
                "--shards",
                str(config.shards),
            ]
            if config.workers is not None and await serve_has_workers():
                args += ["--workers", str(config.workers)]
            if config.database_url:
                args += ["--database-url", config.database_url]
            if redis_url:
                args += ["--redis-url", redis_url]
            handles: list[Any] = []
            if config.prestart_shards:
                say(f"starting Ray and {config.shards} shard actors")
                address = _start_ray(config.shards)
                if address is not None:
                    stack.callback(ray.shutdown)
                handles = await _prestart(url, redis_url, config.shards)
                stack.callback(_kill_all, handles)
                args += ["--ray-address", address or ray.get_runtime_context().gcs_address]

            say("starting usher serve")
            # After Ray started: it leaves what a client needs (e.g. its auth mode) in os.environ.
            env = {
                k: v
                for k, v in os.environ.items()
                if k != "RAY_ADDRESS" and not k.startswith("USHER_")
            }
            port = free_port()
            log = data_dir / "serve.log"
            with log.open("ab") as sink:
                serve = await asyncio.create_subprocess_exec(
                    sys.executable,
                    *("-m", "core.cli", "serve", "--host", "127.0.0.1", "--port", str(port)),
                    *args,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=sink,
                    env=env,
                )
            stack.push_async_callback(_stop, serve)
            banner = await _ready(serve, log)
            if not config.redis_url and not config.prestart_shards:
                served = banner.get("Redis", "")
                redis_parts.append(_redis_pids(served, data_dir))

            def joined(parts: list[Callable[[], list[int]]]) -> Callable[[], list[int]]:
                return lambda: [p for part in parts for p in part()]

            # Keep the log alive after the banner: usher serve must never block on stdout.
            assert serve.stdout is not None
            drain = asyncio.create_task(_discard(serve.stdout))
            stack.callback(drain.cancel)
            yield System(
                target=f"127.0.0.1:{port}",
                database_url=url,
                serve=serve,
                log=log,
                postgres_pids=joined(postgres_parts),
                redis_pids=joined(redis_parts),
                ray_outside=config.prestart_shards,
                workers=config.workers if "--workers" in args else None,
                handles=handles,
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


_has_workers: dict[str, bool] = {}


async def serve_has_workers() -> bool:
    """Whether this ``usher serve`` takes ``--workers`` (its ``--help`` lists it; asked once)."""
    if sys.executable in _has_workers:
        return _has_workers[sys.executable]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "core.cli", "serve", "--help"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    found = process.returncode == 0 and re.search(r"--workers\b", out.decode()) is not None
    _has_workers[sys.executable] = found
    return found


def _start_ray(shards: int) -> str | None:
    """A local Ray for the shards, unless this process has one; its address if started here."""
    import ray

    if ray.is_initialized():
        return None
    ray.init(
        num_cpus=max(2, shards),
        include_dashboard=False,
        namespace="usher",
        log_to_driver=False,
        configure_logging=False,
    )
    return str(ray.get_runtime_context().gcs_address)


async def _prestart(database_url: str, redis_url: str | None, shards: int) -> list[Any]:
    """The shard actors as ``usher serve`` makes them, started."""
    from core.runtime.actor import spawn

    handles = [spawn(i, database_url, redis_url, shards=shards) for i in range(shards)]
    await asyncio.gather(*(h.health.remote() for h in handles))
    return handles


def _kill_all(handles: Sequence[Any]) -> None:
    import ray

    for handle in handles:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)


async def _ready(serve: asyncio.subprocess.Process, log: Path) -> dict[str, str]:
    """Wait for the banner; its ``usher: key: value`` lines."""
    assert serve.stdout is not None
    banner: dict[str, str] = {}

    async def read() -> None:
        assert serve.stdout is not None
        async for raw in serve.stdout:
            line = raw.decode().rstrip("\n")
            if line.startswith("usher: ") and ": " in line[7:]:
                key, _, value = line[7:].partition(": ")
                banner[key] = value
            if line.startswith("usher: metrics: "):
                return
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"usher serve exited before it was ready:\n{tail}")

    await asyncio.wait_for(read(), READY_WAIT)
    return banner


async def _discard(stream: asyncio.StreamReader) -> None:
    async for _ in stream:
        pass


async def _stop(serve: asyncio.subprocess.Process) -> None:
    """SIGTERM (a graceful stop), SIGKILL if it lingers; always reaped."""
    if serve.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            serve.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(serve.wait(), STOP_WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                serve.kill()
    await serve.wait()


# --- the tenant --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tokens:
    tenant: str
    gateway: str
    agents: dict[str, str]


async def configure(system: System, config: E2EConfig, tenant: str) -> Tokens:
    """The tenant and its tokens straight in the database (as ``usher admin`` does), then its
    skills, queues and agents through the AdminService."""
    pool = await asyncpg.create_pool(system.database_url, min_size=1, max_size=2)
    try:
        await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
        _, admin = await credentials.create(pool, tenant, "admin", None)
        _, gateway = await credentials.create(pool, tenant, "gateway", None)
        agent_ids = [f"a{n}" for n in range(config.agents)]
        agents = {a: (await credentials.create(pool, tenant, "agent", a))[1] for a in agent_ids}
    finally:
        await pool.close()
    skills = [f"s{i}" for i in range(config.skills)]
    async with AdminClient(system.target, admin, timeout=60.0) as client:
        for skill in skills:
            await client.create_skill(
                admin_pb.CreateSkillRequest(
                    skill_id=skill, skill=tenant_pb2.Skill(display_name=skill)
                )
            )
        for q in range(config.queues):
            requirement = queue_pb2.SkillRequirement(
                skill=f"skills/{skills[q % len(skills)]}", min_level=1
            )
            await client.create_queue(
                admin_pb.CreateQueueRequest(
                    queue_id=f"q{q}",
                    queue=queue_pb2.Queue(display_name=f"q{q}", requirements=[requirement]),
                )
            )
        for n, agent_id in enumerate(agent_ids):
            own = [skills[n % len(skills)], skills[(n + 1) % len(skills)]]
            await client.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id,
                    agent=agent_pb2.Agent(
                        display_name=agent_id,
                        capacity=float(config.capacity),
                        skills=[agent_pb2.SkillLevel(skill=f"skills/{s}", level=5) for s in own],
                    ),
                )
            )
    return Tokens(tenant, gateway, agents)


# --- the load ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Books:
    """One step's window and its latency samples (ms)."""

    window: loadgen.Window
    enqueue_to_offer: list[float] = field(default_factory=list)
    accept_to_assigned: list[float] = field(default_factory=list)
    routed: list[tuple[float, float]] = field(default_factory=list)
    """(intended arrival, routed) ``perf_counter`` times of the step's routed conversations."""

    def count_routed(self) -> int:
        """Conversations routed in the window shifted by the median arrival→routed time of
        those that arrived in it (``window.completed`` is set to it). Counting in the window
        itself would miss the last arrivals' routing, which falls after it: at a steady state
        a share latency/seconds of what arrived, so a step with a long latency would look as
        if it fell behind. Shifted, a step that keeps up routes what arrived (give or take the
        latency's spread), and one that falls behind routes at the server's pace."""
        window = self.window
        took = sorted(done - intended for intended, done in self.routed if window.inside(intended))
        shift = loadgen.quantile(took, 0.5)
        start, end = window.start + shift, window.end + shift
        window.completed = sum(1 for _, done in self.routed if start <= done < end)
        return window.completed


class Load:
    """The simulated gateways and agents (module docstring)."""

    def __init__(self, system: System, tokens: Tokens, config: E2EConfig) -> None:
        self.config = config
        self.run = uuid.uuid4().hex[:6]
        self.gateways = [
            GatewayClient(system.target, tokens.gateway, timeout=30.0)
            for _ in range(config.gateways)
        ]
        self.agents = {
            agent_id: AgentClient(system.target, token, timeout=30.0)
            for agent_id, token in tokens.agents.items()
        }
        self.arrivals: dict[str, tuple[float, Books, asyncio.Future[None]]] = {}
        """Customer id -> (intended arrival time, its step's books, routed)."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.outbound = 0
        self.rpcs = 0
        """Unary calls of the workload answered without error so far."""
        self.stale = 0
        """Offers for conversations given up on (accepted and ended at once)."""
        self.stale_failures = 0
        self.stray_errors: dict[str, int] = {}
        """Event streams the server cut so far, by kind."""

    @property
    def channels(self) -> int:
        return len(self.gateways) + len(self.agents)

    async def start(self) -> None:
        """Sign the agents in and open every stream."""
        online = agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
        await asyncio.gather(*(client.set_status(online) for client in self.agents.values()))
        for agent_id, client in self.agents.items():
            self._spawn(self._agent(agent_id, client))
        for gateway in self.gateways:
            self._spawn(self._outbound(gateway))

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(
            *(c.close() for c in (*self.gateways, *self.agents.values())), return_exceptions=True
        )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def step(self, rate: float, seconds: float, seed: int) -> tuple[Books, int]:
        """One open-loop step; its books and how many conversations were not routed."""
        start = time.perf_counter() + 0.05
        books = Books(loadgen.Window(start=start, end=start + seconds))
        rng = random.Random(seed)

        async def fire(i: int, intended: float) -> None:
            customer = f"{self.run}-{seed}-{i}"
            routed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.arrivals[customer] = (intended, books, routed)
            try:
                gateway = self.gateways[i % len(self.gateways)]
                await gateway.start_conversation(
                    conv_svc.StartConversationRequest(
                        request_id=customer,
                        channel=CHANNEL,
                        customer=conversation_pb2.CustomerIdentity(external_id=customer),
                        queue=f"queues/q{rng.randrange(self.config.queues)}",
                        first_message=conv_svc.CustomerMessage(
                            text="hello", provider_message_id=f"m-{customer}"
                        ),
                    )
                )
                self.rpcs += 1
                await routed
            finally:
                self.arrivals.pop(customer, None)

        unrouted = await loadgen.run_step(
            rate,
            seconds,
            fire,
            books.window,
            seed=seed,
            drain_seconds=self.config.drain_seconds,
        )
        books.enqueue_to_offer.sort()
        books.accept_to_assigned.sort()
        return books, unrouted

    def _stray(self, kind: str) -> None:
        self.stray_errors[kind] = self.stray_errors.get(kind, 0) + 1

    async def _agent(self, agent_id: str, client: AgentClient) -> None:
        while True:  # a stream the server cuts (it fell behind) is opened again, from now
            try:
                async for event in client.events():
                    if event.WhichOneof("event") == "offer":
                        self._spawn(self._handle(client, event.offer))
            except UsherError as exc:
                self._stray(f"AgentStream{type(exc).__name__}")

    async def _handle(self, client: AgentClient, offer: routing_pb2.Offer) -> None:
        seen = time.perf_counter()
        found = self.arrivals.get(offer.customer.external_id)
        if found is None:
            if offer.customer.external_id.startswith(f"{self.run}-"):
                await self._clear(client, offer)
            return  # not this run's
        intended, books, routed = found
        window = books.window
        arrived_inside = window.inside(intended)
        try:
            if arrived_inside:
                books.enqueue_to_offer.append((seen - intended) * 1e3)
            sent = time.perf_counter()
            await client.accept_offer(agent_svc.AcceptOfferRequest(offer=offer.name))
            done = time.perf_counter()
            self.rpcs += 1
            if arrived_inside:
                books.accept_to_assigned.append((done - sent) * 1e3)
            books.routed.append((intended, done))
            if not routed.done():
                routed.set_result(None)
            conversation = offer.conversation
            await client.send_message(
                agent_svc.SendMessageRequest(conversation=conversation, text="how can I help?")
            )
            self.rpcs += 1
            await asyncio.sleep(self.config.handle_ms / 1e3)
            await client.end_conversation(
                agent_svc.EndConversationRequest(conversation=conversation)
            )
            self.rpcs += 1
        except UsherError as exc:
            if routed.done():
                window.error(type(exc).__name__)
            else:  # the arrival fails with it, and is counted there (once)
                routed.set_exception(exc)

    async def _clear(self, client: AgentClient, offer: routing_pb2.Offer) -> None:
        """An offer for a conversation this run gave up on (a ramp step's backlog past its
        drain, or one re-offered after a failed accept): accept it and end it at once, as an
        agent would, so it does not hold the agent later. Not in any step's books."""
        self.stale += 1
        try:
            await client.accept_offer(agent_svc.AcceptOfferRequest(offer=offer.name))
            self.rpcs += 1
            await client.end_conversation(
                agent_svc.EndConversationRequest(conversation=offer.conversation)
            )
            self.rpcs += 1
        except UsherError:
            self.stale_failures += 1  # e.g. offered to someone else meanwhile: not the run's

    async def _outbound(self, gateway: GatewayClient) -> None:
        while True:  # as for agents: a cut stream is opened again, from now
            try:
                async for _ in gateway.events():
                    self.outbound += 1
            except UsherError as exc:
                self._stray(f"OutboundStream{type(exc).__name__}")


# --- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """What a window cost and did, from its start to its end."""

    seconds: float
    cores: dict[str, float]
    """Cores busy by group: frontdoor, shards, ray (with the shards), server, store, loadgen."""
    frontdoor_cpu_s: float
    rpcs: int
    stream_errors: dict[str, int]


@dataclass(frozen=True, slots=True)
class Sample:
    """Resident memory of every measured process at one time, in bytes, by group."""

    at: float
    rss: dict[str, dict[int, int]]
    titles: dict[int, str]


def _title(command: str) -> str:
    """A short name for a process: its title, or its program and first arguments."""
    if command.startswith(("ray::", "postgres:")):
        return command[:60]
    words = command.split()
    if "core.cli" in words:  # usher serve, or a worker of it: the subcommand, no options
        rest = words[words.index("core.cli") + 1 :]
        title = " ".join(["usher", *itertools.takewhile(lambda w: not w.startswith("-"), rest)])
        if "--worker-index" in rest[:-1]:
            title += f" worker {rest[rest.index('--worker-index') + 1]}"
        return title
    for n, word in enumerate(words):  # a Ray program or script: its file name
        if "-packages/ray/" in word:
            return " ".join([word.rsplit("/", 1)[-1], *words[n + 1 : n + 2]])[:60]
    if words:
        words[0] = words[0].rsplit("/", 1)[-1]
    return " ".join(words)[:60]


class Meter:
    """A window's process figures (module docstring): CPU by group and the calls and stream
    errors between ``begin`` and ``end``; memory samples on demand."""

    def __init__(self, system: System, load: Load) -> None:
        self.system = system
        self.load = load
        self.started = 0.0
        self.ticks: dict[int, int] = {}
        self.rpcs = 0
        self.streams: dict[str, int] = {}

    def begin(self) -> None:
        groups = self.system.processes()
        pids = [p for g in groups.values() for p in g] + [os.getpid()]
        self.started = time.perf_counter()
        self.ticks = procstat.per_process_ticks(pids)
        self.rpcs = self.load.rpcs
        self.streams = dict(self.load.stray_errors)

    def end(self) -> Usage:
        """Since ``begin``: a process born since counts all its time, one gone loses its
        share."""
        seconds = time.perf_counter() - self.started
        rpcs = self.load.rpcs - self.rpcs
        streams = {
            kind: n - self.streams.get(kind, 0)
            for kind, n in self.load.stray_errors.items()
            if n > self.streams.get(kind, 0)
        }
        groups: dict[str, list[int]] = {g: list(p) for g, p in self.system.processes().items()}
        groups["loadgen"] = [os.getpid()]
        now = procstat.per_process_ticks(p for g in groups.values() for p in g)
        ticks = {
            g: max(0, sum(now[p] - self.ticks.get(p, 0) for p in pids if p in now))
            for g, pids in groups.items()
        }
        cores = {
            "frontdoor": procstat.cores(ticks["frontdoor"], seconds),
            "shards": procstat.cores(ticks["shards"], seconds),
            "ray": procstat.cores(ticks["shards"] + ticks["ray"], seconds),
            "store": procstat.cores(ticks["postgres"] + ticks["redis"], seconds),
            "loadgen": procstat.cores(ticks["loadgen"], seconds),
        }
        cores["server"] = round(cores["frontdoor"] + cores["ray"], 2)
        if not groups["postgres"] and not groups["redis"]:
            cores["store"] = -1.0
        return Usage(
            seconds=seconds,
            cores=cores,
            frontdoor_cpu_s=ticks["frontdoor"] / procstat.TICKS_PER_S,
            rpcs=rpcs,
            stream_errors=streams,
        )

    def memory(self) -> Sample:
        groups = self.system.processes()
        at = time.perf_counter() - self.started
        return Sample(
            at=at,
            rss={g: procstat.rss_each(pids) for g, pids in groups.items()},
            titles={pid: _title(cmd) for pids in groups.values() for pid, cmd in pids.items()},
        )


def memory_interval(seconds: float) -> float:
    """Seconds between memory samples: ``MEMORY_INTERVAL_S``, at least 10 samples a run."""
    return min(MEMORY_INTERVAL_S, max(1.0, seconds / 10))


async def measured_step(
    load: Load, system: System, rate: float, seconds: float, seed: int, memory: bool
) -> tuple[E2EStep, Books, Usage, MemoryReport | None]:
    """One step, with its process figures (and, with ``memory``, memory samples)."""
    meter = Meter(system, load)
    samples: list[Sample] = []
    interval = memory_interval(seconds)

    async def sample() -> None:
        await asyncio.sleep(0.05)  # the window starts 0.05 s after load.step begins
        meter.begin()
        if not memory:
            return
        k = 0
        while True:
            samples.append(await asyncio.to_thread(meter.memory))
            k += 1
            await asyncio.sleep(max(0.0, meter.started + k * interval - time.perf_counter()))

    sampler = asyncio.create_task(sample())
    usage: Usage | None = None

    async def stop_sampling() -> None:
        await asyncio.sleep(0.05 + seconds)
        nonlocal usage
        usage = meter.end()
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        if memory:
            samples.append(await asyncio.to_thread(meter.memory))

    stopper = asyncio.create_task(stop_sampling())
    books, unrouted = await load.step(rate, seconds, seed)
    await stopper
    assert usage is not None
    p_offer = loadgen.Percentiles.of(books.enqueue_to_offer)
    p_accept = loadgen.Percentiles.of(books.accept_to_assigned)
    window = books.window
    routed = books.count_routed()
    for kind, n in usage.stream_errors.items():
        window.errors += n
        window.error_kinds[kind] = window.error_kinds.get(kind, 0) + n
    cores = usage.cores
    step = E2EStep(
        offered_per_s=round(rate, 1),
        routed_per_s=round(routed / seconds, 1),
        arrived_per_s=round(window.arrivals / seconds, 1),
        rpcs_per_s=round(usage.rpcs / usage.seconds, 1) if usage.seconds > 0 else 0.0,
        enqueue_to_offer_p50_ms=p_offer.p50,
        enqueue_to_offer_p99_ms=p_offer.p99,
        enqueue_to_offer_p999_ms=p_offer.p999,
        accept_to_assigned_p50_ms=p_accept.p50,
        accept_to_assigned_p99_ms=p_accept.p99,
        errors=window.errors + unrouted,
        unrouted=unrouted,
        frontdoor_cpu=cores["frontdoor"],
        frontdoor_cpu_ms_per_conversation=round(usage.frontdoor_cpu_s * 1e3 / routed, 2)
        if routed
        else 0.0,
        ray_cpu=cores["ray"],
        shards_cpu=cores["shards"],
        store_cpu=cores["store"],
        loadgen_cpu=cores["loadgen"],
        lag_p99_ms=round(loadgen.quantile(sorted(window.lag_ms), 0.99), 3),
        seconds=seconds,
    )
    return step, books, usage, (memory_report(samples, interval) if memory else None)


def growth_mib_per_min(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MiB) points, in MiB a minute (0 with under two)."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var <= 0:
        return 0.0
    return round(sum((t - mean_t) * (m - mean_m) for t, m in points) / var * 60.0, 2)


def memory_report(samples: Sequence[Sample], interval: float) -> MemoryReport:
    """Groups and processes over the samples (module docstring)."""
    settled = [s for s in samples if s.at >= SETTLE_S]
    after = SETTLE_S if len(settled) >= 3 else 0.0
    fitted = settled if after else list(samples)

    def figures(mib: list[float], fit: list[tuple[float, float]]) -> dict[str, float]:
        return {
            "start_mib": round(mib[0], 1) if mib else 0.0,
            "end_mib": round(mib[-1], 1) if mib else 0.0,
            "max_mib": round(max(mib), 1) if mib else 0.0,
            "growth_mib_per_min": growth_mib_per_min(fit),
        }

    def total(s: Sample, names: Sequence[str]) -> float:
        return sum(b for g in names for b in s.rss.get(g, {}).values()) / 2**20

    groups: dict[str, GroupMemory] = {}
    for name, members in [(g, (g,)) for g in GROUPS] + [("server", ("frontdoor", "shards", "ray"))]:
        mib = [total(s, members) for s in samples]
        fit = [(s.at, total(s, members)) for s in fitted]
        count = sum(len(samples[-1].rss.get(g, {})) for g in members) if samples else 0
        groups[name] = GroupMemory(name, count, **figures(mib, fit))
    processes: list[ProcessMemory] = []
    titles: dict[int, str] = {}
    for s in samples:
        titles.update(s.titles)
    for group in GROUPS:
        pids = sorted({pid for s in samples for pid in s.rss.get(group, {})})
        for pid in pids:
            mib = [s.rss.get(group, {}).get(pid, 0) / 2**20 for s in samples]
            fit = [(s.at, s.rss[group][pid] / 2**20) for s in fitted if pid in s.rss.get(group, {})]
            processes.append(ProcessMemory(group, pid, titles.get(pid, ""), **figures(mib, fit)))
    return MemoryReport(
        interval_s=round(interval, 1),
        samples=len(samples),
        growth_after_s=after,
        groups=groups,
        processes=tuple(processes),
    )


async def drain_backlog(database_url: str, tenant: str) -> float:
    """Wait until none of the tenant's conversations is queued or offered (at most
    ``SETTLE_LIMIT`` s); the seconds waited."""
    began = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        while time.perf_counter() - began < SETTLE_LIMIT:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM conversations WHERE tenant_id = $1"
                " AND state IN ('queued', 'offered')",
                tenant,
            )
            if not waiting:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return time.perf_counter() - began


async def run_e2e(config: E2EConfig, progress: Progress | None = None) -> E2ERun:
    """The whole suite (module docstring)."""
    say = progress or (lambda _: None)
    if config.agents < 1 or config.gateways < 1 or config.queues < 1 or config.skills < 1:
        raise ValueError("give at least one agent, gateway, queue and skill")
    if config.seconds <= 0 or config.rate <= 0:
        raise ValueError("seconds and rate must be positive")
    if config.workers is not None:
        if config.workers < 1:
            raise ValueError("workers must be positive")
        if config.workers > 1 and not await serve_has_workers():
            raise ValueError("this usher serve has no --workers option (see usher serve --help)")

    async with running_system(config, say) as system:
        tenant = f"bench{uuid.uuid4().hex[:8]}"
        say(f"configuring tenant {tenant}: {config.agents} agents")
        tokens = await configure(system, config, tenant)
        load = Load(system, tokens, config)
        try:
            await load.start()
            steps: list[E2EStep] = []
            peak: float | None = None
            peak_kept_up: bool | None = None
            fell_behind: bool | None = None
            rate = config.rate
            seed = config.seed * 1000
            if config.ramp:
                for k, offered in enumerate(
                    loadgen.ramp_rates(config.ramp_start, config.ramp_factor, config.ramp_steps)
                ):
                    say(f"ramp: {offered:,.0f} conversations/s for {config.ramp_seconds:g} s")
                    step, _, _, _ = await measured_step(
                        load, system, offered, config.ramp_seconds, seed + k, memory=False
                    )
                    steps.append(step)
                    if not step.kept_up:
                        break
                kept = [s.routed_per_s for s in steps if s.kept_up]
                peak_kept_up = bool(kept)
                fell_behind = not steps[-1].kept_up
                peak = max(kept) if kept else max(s.routed_per_s for s in steps)
                rate = max(1.0, round(config.peak_share * peak, 1))
                if fell_behind:
                    waited = await drain_backlog(system.database_url, tenant)
                    say(f"the ramp's backlog drained in {waited:.0f} s")
            say(f"measuring: {rate:,.0f} conversations/s for {config.seconds:g} s")
            step, books, usage, memory = await measured_step(
                load, system, rate, config.seconds, seed + 999, memory=True
            )
            steps.append(step)
            assert memory is not None
        finally:
            await load.close()
        channels = load.channels
        frontdoor_processes = memory.groups["frontdoor"].processes

    baseline_steps: list[loadgen.Step] = []
    baseline_ms: list[float] = []
    if config.baseline:
        baseline_steps, baseline_ms = await loadgen.baseline(
            loadgen.ramp_rates(
                config.baseline_start, config.baseline_factor, config.baseline_steps
            ),
            config.baseline_seconds,
            channels,
            seed=config.seed,
            drain_seconds=min(config.drain_seconds, 5.0),
            progress=say,
        )
    baseline_rps = loadgen.peak(baseline_steps)
    p_offer = loadgen.Percentiles.of(books.enqueue_to_offer)
    p_accept = loadgen.Percentiles.of(books.accept_to_assigned)
    result = E2EResult(
        duration_s=config.seconds,
        offered_per_s=step.offered_per_s,
        routed_per_s=step.routed_per_s,
        enqueue_to_offer_ms=p_offer,
        accept_to_assigned_ms=p_accept,
        errors=step.errors,
        error_kinds=dict(books.window.error_kinds)
        | ({"Unrouted": step.unrouted} if step.unrouted else {}),
        baseline_rps=baseline_rps,
        ratio_to_baseline=round(step.routed_per_s / baseline_rps, 3) if baseline_rps else 0.0,
        rpcs_per_s=step.rpcs_per_s,
        rpc_ratio=round(step.rpcs_per_s / baseline_rps, 3) if baseline_rps else 0.0,
        frontdoor_cpu_ms_per_conversation=step.frontdoor_cpu_ms_per_conversation,
        peak_routed_per_s=peak,
        peak_share=config.peak_share if config.ramp else None,
        peak_kept_up=peak_kept_up,
        ramp_fell_behind=fell_behind,
        stale_offers=load.stale,
        stale_failures=load.stale_failures,
        cpu_cores=usage.cores,
        server_memory=Memory(
            start_mib=memory.groups["server"].start_mib,
            end_mib=memory.groups["server"].end_mib,
            max_mib=memory.groups["server"].max_mib,
            growth_mib_per_min=memory.groups["server"].growth_mib_per_min,
            samples=memory.samples,
        ),
        memory=memory,
        steps=tuple(steps),
        baseline_steps=tuple(baseline_steps),
        setup={
            "agents": config.agents,
            "skills": config.skills,
            "queues": config.queues,
            "capacity": config.capacity,
            "gateways": config.gateways,
            "handle_ms": config.handle_ms,
            "shards": config.shards,
            "workers": system.workers,
            "frontdoor_processes": frontdoor_processes,
            "prestart_shards": config.prestart_shards,
            "store": "given URLs" if config.database_url else "embedded",
            "cpus": os.cpu_count(),
        },
    )
    return E2ERun(
        result,
        tuple(books.enqueue_to_offer),
        tuple(books.accept_to_assigned),
        tuple(baseline_ms),
    )
