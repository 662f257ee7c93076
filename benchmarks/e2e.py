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

- ``routed_per_s``: accepted offers (AcceptOffer answered, the conversation ACTIVE) completed in
  the window, a second.
- enqueue→offer: from the conversation's *intended* arrival time (so a late start counts) to
  the offer reaching the agent's stream. accept→assigned: from sending AcceptOffer to its
  answer. p50, p99 and p99.9 in ms, over the conversations that arrived in the window.
- errors: failed calls, conversations shed (too many in progress), and conversations not
  routed by the end of the drain.
- CPU, in cores (1.0 = one core busy) over the window, from ``/proc``: the front door
  (``usher serve``), Ray (its processes and the shard actors), the store (embedded PostgreSQL
  and Redis; -1 when given by URL), and the load generator (this process).
- server memory: resident memory of the front door and Ray processes, sampled every second of
  the measured run (start, end, peak, and growth per minute by least squares).

With ``ramp``, rates rise geometrically until a step falls behind; the peak is the best routed
rate of a step that kept up, and the measured run is then held at ``peak_share`` of it. In the
same run the no-op baseline (``loadgen.baseline``) finds the request rate of a ``grpc.aio``
server doing nothing, over as many channels as the load generator opens; the report gives the
ratio of routed conversations to it. Everything shares this machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
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

TARGET_ROUTED_PER_S = 1_000.0
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.25

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
    enqueue_to_offer_p50_ms: float
    enqueue_to_offer_p99_ms: float
    enqueue_to_offer_p999_ms: float
    accept_to_assigned_p50_ms: float
    accept_to_assigned_p99_ms: float
    errors: int
    unrouted: int
    frontdoor_cpu: float
    ray_cpu: float
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
    """Server resident memory over the measured run, in MiB."""

    start_mib: float
    end_mib: float
    max_mib: float
    growth_mib_per_min: float
    samples: int


@dataclass(frozen=True, slots=True)
class E2EResult:
    """The run: the measured step, the ramp, the baseline, and the headline figures."""

    duration_s: float
    offered_per_s: float
    routed_per_s: float
    enqueue_to_offer_ms: loadgen.Percentiles
    accept_to_assigned_ms: loadgen.Percentiles
    errors: int
    error_kinds: dict[str, int]
    baseline_rps: float
    ratio_to_baseline: float
    peak_routed_per_s: float | None
    cpu_cores: dict[str, float]
    """Of the measured run: frontdoor, ray, server (the two), store, loadgen."""
    server_memory: Memory
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
    """The JSON document: ``{"suite": "e2e", <E2EResult fields>}``."""
    body = dataclasses.asdict(result)
    for key in ("enqueue_to_offer_ms", "accept_to_assigned_ms"):
        body[key] = {k: v for k, v in body[key].items()}
    return {"suite": "e2e", **body}


def check_targets(result: E2EResult) -> list[Verdict]:
    """The issue's targets that this run speaks to."""
    verdicts = [
        Verdict(
            "routed conversations/s (at least)",
            result.routed_per_s,
            TARGET_ROUTED_PER_S,
            result.routed_per_s >= TARGET_ROUTED_PER_S,
        ),
        Verdict(
            "p99 enqueue→offer ms" + (" at 80% of peak" if result.peak_routed_per_s else ""),
            result.enqueue_to_offer_ms.p99,
            TARGET_P99_MS,
            result.enqueue_to_offer_ms.samples > 0
            and result.enqueue_to_offer_ms.p99 <= TARGET_P99_MS,
        ),
    ]
    if result.baseline_rps > 0:
        verdicts.append(
            Verdict(
                "routed/s ÷ no-op requests/s (at least)",
                result.ratio_to_baseline,
                TARGET_RATIO,
                result.ratio_to_baseline >= TARGET_RATIO,
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
    store_pids: Callable[[], list[int]]
    ray_outside: bool
    """Ray runs in this process's tree (prestarted shards), not under ``usher serve``."""
    handles: list[Any] = field(default_factory=list)

    def frontdoor_pids(self) -> list[int]:
        return [self.serve.pid]

    def ray_pids(self) -> list[int]:
        if not self.ray_outside:
            return [p for p in procstat.tree(self.serve.pid) if p != self.serve.pid]
        me = os.getpid()
        exclude = set(procstat.tree(self.serve.pid)) | {me} | set(self.store_pids())
        return [p for p in procstat.tree(me) if p not in exclude]

    def server_pids(self) -> list[int]:
        return self.frontdoor_pids() + self.ray_pids()


def _postgres_pids(data_dir: Path) -> Callable[[], list[int]]:
    pidfile = data_dir.resolve() / "postgres" / "postmaster.pid"

    def pids() -> list[int]:
        try:
            return procstat.tree(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return []

    return pids


def _redis_pids(url: str) -> Callable[[], list[int]]:
    socket_path = url.removeprefix("unix://") if url.startswith("unix://") else None
    found: list[int] = []

    def pids() -> list[int]:
        if socket_path and not found:
            found.extend(procstat.find(f"unixsocket:{socket_path}"))
        return list(found)

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
            store_parts: list[Callable[[], list[int]]] = []
            if not url:
                postgres = EmbeddedPostgres(data_dir)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    url = await asyncio.to_thread(postgres.start)
                stack.push_async_callback(asyncio.to_thread, postgres.stop)
                store_parts.append(_postgres_pids(data_dir))
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
                store_parts.append(_redis_pids(redis_url))

            args = [
                "--http-port",
                "-1",
                "--data-dir",
                str(data_dir),
                "--shards",
                str(config.shards),
            ]
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
                store_parts.append(_redis_pids(served))

            def store_pids() -> list[int]:
                return [p for part in store_parts for p in part()]

            # Keep the log alive after the banner: usher serve must never block on stdout.
            assert serve.stdout is not None
            drain = asyncio.create_task(_discard(serve.stdout))
            stack.callback(drain.cancel)
            yield System(
                target=f"127.0.0.1:{port}",
                database_url=url,
                serve=serve,
                log=log,
                store_pids=store_pids,
                ray_outside=config.prestart_shards,
                handles=handles,
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


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
        self.stray_errors: dict[str, int] = {}

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
            return  # not this run's, or given up on
        intended, books, routed = found
        window = books.window
        arrived_inside = window.inside(intended)
        try:
            if arrived_inside:
                books.enqueue_to_offer.append((seen - intended) * 1e3)
            sent = time.perf_counter()
            await client.accept_offer(agent_svc.AcceptOfferRequest(offer=offer.name))
            done = time.perf_counter()
            if arrived_inside:
                books.accept_to_assigned.append((done - sent) * 1e3)
            if window.inside(done):
                window.completed += 1
            if not routed.done():
                routed.set_result(None)
            conversation = offer.conversation
            await client.send_message(
                agent_svc.SendMessageRequest(conversation=conversation, text="how can I help?")
            )
            await asyncio.sleep(self.config.handle_ms / 1e3)
            await client.end_conversation(
                agent_svc.EndConversationRequest(conversation=conversation)
            )
        except UsherError as exc:
            window.error(type(exc).__name__)
            if not routed.done():
                routed.set_exception(exc)

    async def _outbound(self, gateway: GatewayClient) -> None:
        while True:  # as for agents: a cut stream is opened again, from now
            try:
                async for _ in gateway.events():
                    self.outbound += 1
            except UsherError as exc:
                self._stray(f"OutboundStream{type(exc).__name__}")


# --- measuring ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Cpu:
    """CPU ticks of each process group at the start of a window."""

    system: System
    groups: dict[str, dict[int, int]] = field(default_factory=dict)

    def _pids(self) -> dict[str, list[int]]:
        return {
            "frontdoor": self.system.frontdoor_pids(),
            "ray": self.system.ray_pids(),
            "store": self.system.store_pids(),
            "loadgen": [os.getpid()],
        }

    def begin(self) -> None:
        self.groups = {k: procstat.per_process_ticks(v) for k, v in self._pids().items()}

    def end(self, seconds: float) -> dict[str, float]:
        """Cores used by each group since ``begin`` (a process born since counts all its
        time)."""
        used: dict[str, float] = {}
        for name, pids in self._pids().items():
            now = procstat.per_process_ticks(pids)
            before = self.groups.get(name, {})
            ticks = sum(t - before.get(pid, 0) for pid, t in now.items())
            used[name] = procstat.cores(max(0, ticks), seconds)
        used["server"] = round(used["frontdoor"] + used["ray"], 2)
        if not self.system.store_pids():
            used["store"] = -1.0
        return used


async def measured_step(
    load: Load, system: System, rate: float, seconds: float, seed: int, memory: bool
) -> tuple[E2EStep, Books, dict[str, float], Memory | None]:
    cpu = Cpu(system)
    rss: list[tuple[float, int]] = []

    async def sample() -> None:
        await asyncio.sleep(0.05)
        cpu.begin()
        while True:
            rss.append((time.perf_counter(), procstat.rss_bytes(system.server_pids())))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    cpu_used: dict[str, float] = {}

    async def stop_sampling() -> None:
        await asyncio.sleep(0.05 + seconds)
        nonlocal cpu_used
        cpu_used = cpu.end(seconds)
        sampler.cancel()

    stopper = asyncio.create_task(stop_sampling())
    books, unrouted = await load.step(rate, seconds, seed)
    await stopper
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    p_offer = loadgen.Percentiles.of(books.enqueue_to_offer)
    p_accept = loadgen.Percentiles.of(books.accept_to_assigned)
    window = books.window
    step = E2EStep(
        offered_per_s=round(rate, 1),
        routed_per_s=round(window.completed / seconds, 1),
        arrived_per_s=round(window.arrivals / seconds, 1),
        enqueue_to_offer_p50_ms=p_offer.p50,
        enqueue_to_offer_p99_ms=p_offer.p99,
        enqueue_to_offer_p999_ms=p_offer.p999,
        accept_to_assigned_p50_ms=p_accept.p50,
        accept_to_assigned_p99_ms=p_accept.p99,
        errors=window.errors + unrouted,
        unrouted=unrouted,
        frontdoor_cpu=cpu_used.get("frontdoor", 0.0),
        ray_cpu=cpu_used.get("ray", 0.0),
        store_cpu=cpu_used.get("store", -1.0),
        loadgen_cpu=cpu_used.get("loadgen", 0.0),
        lag_p99_ms=round(loadgen.quantile(sorted(window.lag_ms), 0.99), 3),
        seconds=seconds,
    )
    return step, books, cpu_used, (_memory(rss) if memory else None)


def _memory(samples: list[tuple[float, int]]) -> Memory:
    if not samples:
        return Memory(0.0, 0.0, 0.0, 0.0, 0)
    mib = [(t, b / 2**20) for t, b in samples]
    n = len(mib)
    slope = 0.0
    if n >= 2:
        mean_t = sum(t for t, _ in mib) / n
        mean_m = sum(m for _, m in mib) / n
        var = sum((t - mean_t) ** 2 for t, _ in mib)
        if var > 0:
            slope = sum((t - mean_t) * (m - mean_m) for t, m in mib) / var * 60.0
    return Memory(
        start_mib=round(mib[0][1], 1),
        end_mib=round(mib[-1][1], 1),
        max_mib=round(max(m for _, m in mib), 1),
        growth_mib_per_min=round(slope, 2),
        samples=n,
    )


async def run_e2e(config: E2EConfig, progress: Progress | None = None) -> E2ERun:
    """The whole suite (module docstring)."""
    say = progress or (lambda _: None)
    if config.agents < 1 or config.gateways < 1 or config.queues < 1 or config.skills < 1:
        raise ValueError("give at least one agent, gateway, queue and skill")
    if config.seconds <= 0 or config.rate <= 0:
        raise ValueError("seconds and rate must be positive")

    async with running_system(config, say) as system:
        tenant = f"bench{uuid.uuid4().hex[:8]}"
        say(f"configuring tenant {tenant}: {config.agents} agents")
        tokens = await configure(system, config, tenant)
        load = Load(system, tokens, config)
        try:
            await load.start()
            steps: list[E2EStep] = []
            peak: float | None = None
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
                peak = max(kept) if kept else max(s.routed_per_s for s in steps)
                rate = max(1.0, round(config.peak_share * peak, 1))
            say(f"measuring: {rate:,.0f} conversations/s for {config.seconds:g} s")
            step, books, cpu_used, memory = await measured_step(
                load, system, rate, config.seconds, seed + 999, memory=True
            )
            steps.append(step)
            assert memory is not None
        finally:
            await load.close()
        channels = load.channels
        stream_errors = dict(load.stray_errors)
        """Streams the server cut during the whole run (not counted in ``errors``)."""

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
        | ({"Unrouted": step.unrouted} if step.unrouted else {})
        | stream_errors,
        baseline_rps=baseline_rps,
        ratio_to_baseline=round(step.routed_per_s / baseline_rps, 3) if baseline_rps else 0.0,
        peak_routed_per_s=peak,
        cpu_cores=cpu_used,
        server_memory=memory,
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
