"""Several front-door processes on one host: ``usher serve --workers N``.

One Python process serves gRPC on one core at most, so ``usher serve`` runs N of them (default:
the number of cores) on the same port. grpc-python binds with ``SO_REUSEPORT`` on Linux (the
server sets ``grpc.so_reuseport`` explicitly, see ``core.api.server``), so every worker listens on
the port and the kernel spreads incoming connections over them; every worker serves every tenant.

The parent process (``supervise``) owns what is shared and serves no calls itself:

- it connects to the stores, starting the embedded PostgreSQL and Redis when no URLs are given,
  and runs the migrations once;
- it joins Ray (starting a local head unless ``--ray-address``) and starts the shard actors;
- with ``--demo`` it seeds the demo tenant once and runs the web chat gateway in its own process;
- it picks the port once (``--port 0``: a free port, held by an unlistening ``SO_REUSEPORT``
  socket until the end, so nothing else takes it) and starts N workers: ``usher serve`` again,
  attached to the same database, Redis and Ray (the URLs travel in the environment, never on a
  command line), each with the hidden ``--worker-of``/``--worker-index``;
- once every worker reports ready it prints the banner once (with the workers' pids);
- a worker that exits while the parent is not stopping is logged and started again (the same
  index, after a backoff that grows while it keeps failing);
- SIGTERM or SIGINT is forwarded (SIGTERM) to the workers, each drains as a single front door
  does (``core.api.server``); then the parent stops the demo gateway, leaves Ray (stopping the
  local one it started) and stops the embedded stores, and exits 0 (1 if a worker did not exit
  cleanly). A second signal kills the workers at once.

Workers run in sessions of their own, so a terminal's Ctrl-C reaches only the parent, which
forwards it; a worker whose parent is gone (killed with SIGKILL) stops by itself (it polls its
parent pid). Committed events reach every worker's feeds through the Redis commit fan-out
(``core.api.tail``), as with several front doors in cluster mode.

Metrics: worker i serves Prometheus metrics on ``--http-port`` + i (with ``--http-port 0`` each
picks a free port; -1 turns them off); each exports ``usher_front_door_info{worker, pid}``.
``--local`` (an in-process shard) cannot be shared between processes: it always runs 1 worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click
import structlog

from core.api.server import Server
from core.banner import Banner, Demo

if TYPE_CHECKING:  # core.serve imports this module
    from core.serve import ServeSettings

log = structlog.get_logger(__name__)

READY = "usher-worker-ready "
"""How a worker's stdout line announcing it listens starts (JSON follows)."""
STOP_MARGIN = 30.0
"""Seconds a worker may take beyond ``--grace`` to exit after SIGTERM before it is killed."""
PARENT_POLL = 1.0
"""How often a worker checks that its parent is alive (seconds)."""
STEADY = 30.0
"""A worker that ran this long (seconds) before exiting is restarted without delay."""
MAX_BACKOFF = 30.0
"""The longest wait before starting a worker that keeps failing again (seconds)."""
PR_SET_PDEATHSIG = 1


def worker_count(settings: ServeSettings) -> int:
    """How many front-door processes ``settings`` asks for: 1 with ``local``."""
    return 1 if settings.local else settings.workers


# --- in a worker ------------------------------------------------------------------------------


def watch_parent(parent: int) -> None:
    """SIGTERM this process (a graceful stop) once ``parent`` is no longer its parent: at once
    on Linux (``PR_SET_PDEATHSIG``), else within ``PARENT_POLL`` seconds."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        log.warning("front-door parent gone; stopping", parent=parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def ready_reporter(index: int) -> Callable[[Server, str], None]:
    """What a worker does once it listens: export ``usher_front_door_info`` and tell the parent
    (one ``READY`` line on stdout)."""

    def report(server: Server, metrics: str) -> None:
        import prometheus_client

        info = prometheus_client.Gauge(
            "usher_front_door_info",
            "This front-door process (usher serve --workers): its index and pid.",
            ["worker", "pid"],
        )
        info.labels(worker=str(index), pid=str(os.getpid())).set(1)
        facts = {
            "index": index,
            "pid": os.getpid(),
            "port": server.port,
            "services": list(server.served),
            "metrics": metrics,
            "web": server.web.url if server.web is not None else None,
        }
        sys.stdout.write(READY + json.dumps(facts) + "\n")
        sys.stdout.flush()

    return report


# --- in the parent ----------------------------------------------------------------------------


def reserve_port(host: str, port: int) -> socket.socket | None:
    """With ``port`` 0: a socket bound (``SO_REUSEPORT``, not listening) to a free port of
    ``host``, to keep until the workers are gone; None otherwise."""
    if port != 0:
        return None
    family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    holder = socket.socket(family, kind, proto)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(address)
    except BaseException:
        holder.close()
        raise
    return holder


@dataclass(frozen=True, slots=True)
class Shared:
    """What every worker attaches to."""

    port: int
    web_port: int
    database_url: str
    redis_url: str
    ray_address: str


def worker_command(settings: ServeSettings, shared: Shared, index: int) -> list[str]:
    http_port = settings.http_port if settings.http_port <= 0 else settings.http_port + index
    return [
        *(sys.executable, "-m", "core.cli", "serve"),
        *("--host", settings.host, "--port", str(shared.port)),
        *("--web-port", str(shared.web_port)),
        *(arg for origin in settings.cors_origins for arg in ("--cors-origin", origin)),
        *(("--public-url", settings.public_url) if settings.public_url else ()),
        *("--http-port", str(http_port), "--data-dir", str(settings.data_dir)),
        *("--shards", str(settings.shards), "--grace", str(settings.grace)),
        *("--max-streams-per-credential", str(settings.max_streams_per_credential)),
        *("--max-streams-per-tenant", str(settings.max_streams_per_tenant)),
        *("--keepalive-time", str(settings.keepalive_time)),
        *("--keepalive-timeout", str(settings.keepalive_timeout)),
        *(("--tls-cert", str(settings.tls_cert)) if settings.tls_cert else ()),
        *(("--tls-key", str(settings.tls_key)) if settings.tls_key else ()),
        *("--workers", "1", "--worker-of", str(os.getpid()), "--worker-index", str(index)),
    ]


def worker_environment(shared: Shared) -> dict[str, str]:
    """The parent's environment (Ray's token, if any, included) without ``USHER_*`` settings
    and ``RAY_ADDRESS``, plus where the stores and Ray are."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USHER_") and k != "RAY_ADDRESS"}
    env["USHER_DATABASE_URL"] = shared.database_url
    env["USHER_REDIS_URL"] = shared.redis_url
    env["USHER_RAY_ADDRESS"] = shared.ray_address
    return env


class WorkerExited(Exception):
    """A worker exited before it was ready."""


@dataclass
class Worker:
    """One worker process, started again whenever it exits unexpectedly."""

    index: int
    command: list[str]
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """What the running process reported when it was ready (``ready_reporter``)."""
    _ready: asyncio.Future[dict[str, Any]] | None = None
    _reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        """Start the process and wait until it is ready (``WorkerExited`` if it exits first)."""
        self._ready = asyncio.get_running_loop().create_future()
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent only
        )
        self._reader = asyncio.create_task(self._read(self.process, self._ready))
        self.facts = await self._ready

    async def _read(
        self, process: asyncio.subprocess.Process, ready: asyncio.Future[dict[str, Any]]
    ) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(READY) and not ready.done():
                ready.set_result(json.loads(line[len(READY) :]))
            else:
                click.echo(line)
        if not ready.done():
            code = await process.wait()
            ready.set_exception(WorkerExited(f"worker {self.index} exited with {code}"))

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return code


class Supervisor:
    """Starts the workers, restarts those that exit, and stops them all."""

    def __init__(self, workers: list[Worker], grace: float) -> None:
        self.workers = workers
        self.grace = grace
        self.stopping = False
        self._watches: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every worker and wait until all are ready; on a failure, stop the others and
        raise ``WorkerExited``."""
        try:
            await asyncio.gather(*(w.start() for w in self.workers))
        except BaseException:
            await self.stop()
            raise
        self._watches = [asyncio.create_task(self._watch(w)) for w in self.workers]

    async def _watch(self, worker: Worker) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            code = await worker.wait()
            if self.stopping:
                return
            failures = 0 if time.monotonic() - started >= STEADY else failures + 1
            delay = min(MAX_BACKOFF, 2.0 ** (failures - 1)) if failures else 0.0
            log.error(
                "front-door worker exited; restarting it",
                worker=worker.index,
                pid=worker.pid,
                code=code,
                delay=delay,
            )
            while not self.stopping:
                await asyncio.sleep(delay)
                if self.stopping:
                    return
                try:
                    await worker.start()
                except WorkerExited as exc:
                    failures += 1
                    delay = min(MAX_BACKOFF, 2.0 ** (failures - 1))
                    log.error("front-door worker failed to start", error=str(exc), delay=delay)
                    continue
                log.info(
                    "front-door worker restarted",
                    worker=worker.index,
                    pid=worker.pid,
                    metrics=worker.facts.get("metrics"),
                )
                break

    async def stop(self, kill: asyncio.Event | None = None) -> bool:
        """SIGTERM every worker and wait for them (SIGKILL after ``grace`` + ``STOP_MARGIN``,
        or once ``kill`` is set); whether all of them exited 0."""
        self.stopping = True
        running = [w for w in self.workers if w.process and w.process.returncode is None]
        for worker in running:
            worker.signal(signal.SIGTERM)
        waiting: asyncio.Future[list[int]] = asyncio.gather(*(w.wait() for w in running))
        killing: asyncio.Future[Any] = asyncio.ensure_future((kill or asyncio.Event()).wait())
        try:
            done, _ = await asyncio.wait(
                [waiting, killing],
                timeout=self.grace + STOP_MARGIN,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if waiting not in done:
                if killing in done:
                    log.warning("signalled again: killing the front-door workers")
                else:
                    log.error("front-door workers did not stop in time; killing them")
                for worker in running:
                    worker.signal(signal.SIGKILL)
            codes = await waiting
        finally:
            killing.cancel()
        for task in self._watches:
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        for worker, code in zip(running, codes, strict=True):
            if code != 0:
                log.warning("front-door worker exited uncleanly", worker=worker.index, code=code)
        return all(code == 0 for code in codes)


async def _seed_demo(settings: ServeSettings, handles: list[Any], connections: Any) -> Demo:
    """The demo tenant, seeded once through the shards (``core.serve.seed_demo``)."""
    from core.api.context import ApiContext
    from core.api.metrics import CountingFeeds
    from core.runtime.dispatcher import Dispatcher
    from core.serve import seed_demo
    from core.store.customers import Customers
    from core.store.eventlog import EventLog
    from core.store.records import Records

    ctx = ApiContext(
        submit=Dispatcher(handles).submit,
        feeds=CountingFeeds(EventLog(connections.pg).load),
        pool=connections.pg,
        redis=connections.redis,
        records=Records(connections.pg),
        customers=Customers(connections.pg),
    )
    return await seed_demo(ctx)


async def _first(*aws: Awaitable[Any]) -> None:
    """Wait until the first of ``aws`` completes; cancel the others."""
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(a) for a in aws]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def supervise(settings: ServeSettings) -> int:
    """The parent of ``worker_count(settings)`` workers (see the module docstring) until SIGTERM
    or SIGINT; the exit code: 0 when every worker stopped cleanly, else 1."""
    import warnings

    import ray

    from core.serve import DEMO_TENANT, start_shards, web_origins, with_chat
    from core.store.connect import connect

    stop = asyncio.Event()
    kill = asyncio.Event()

    def signalled() -> None:
        (kill if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    count = worker_count(settings)
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore", UserWarning)
        connections = await connect(settings.store())
    holder = reserve_port(settings.host, settings.port)
    port = settings.port if holder is None else int(holder.getsockname()[1])
    web_holder = reserve_port(settings.host, settings.web_port)
    web_port = settings.web_port if web_holder is None else int(web_holder.getsockname()[1])
    try:
        handles, database_url, redis_url = await start_shards(settings, connections)
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which sets its own
                loop.add_signal_handler(sig, signalled)
            demo = await _seed_demo(settings, handles, connections) if settings.demo else None
            address = ray.get_runtime_context().gcs_address
            shared = Shared(port, web_port, database_url, redis_url, address)
            env = worker_environment(shared)
            supervisor = Supervisor(
                [Worker(i, worker_command(settings, shared, i), env) for i in range(count)],
                settings.grace,
            )
            starting = asyncio.ensure_future(supervisor.start())
            await _first(starting, stop.wait())
            if not starting.done():  # stopped while starting (the supervisor stops the workers)
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return 0
            try:
                starting.result()
            except WorkerExited as exc:
                raise click.ClickException(f"a front-door worker failed to start: {exc}") from exc
            chat = None
            try:
                if demo is not None and settings.webchat_port >= 0:
                    from gateways.webchat.demo import DemoWebChat

                    chat = DemoWebChat(
                        api_key=demo.tokens["gateway"],
                        tenant=DEMO_TENANT,
                        host=settings.host,
                        port=settings.webchat_port,
                        data_dir=settings.data_dir / "gateway",
                    )
                workers = supervisor.workers
                metrics = ", ".join(str(w.facts["metrics"]) for w in workers)
                mode = f"{settings.shards} Ray shard actors ({settings.ray_address or 'local Ray'})"
                pids = ", ".join(str(w.pid) for w in workers)
                if chat is not None:
                    chat.start(settings.host, port)
                banner = Banner(
                    grpc=f"{settings.host}:{port}",
                    services=len(workers[0].facts["services"]),
                    routing=mode,
                    workers=f"{count} front-door processes (pids {pids})",
                    postgres=connections.database_url,
                    redis=connections.redis_url,
                    metrics="off" if settings.http_port < 0 else metrics,
                    web=str(workers[0].facts["web"]) if workers[0].facts.get("web") else None,
                    cors=web_origins(settings),
                    demo=with_chat(demo, chat),
                )
                for line in banner.lines():
                    click.echo(line)
                sys.stdout.flush()
                await stop.wait()
                log.info("stopping the front-door workers", workers=count)
            finally:
                clean = await supervisor.stop(kill)
                if chat is not None:
                    await chat.stop()
        finally:
            ray.shutdown()  # a local Ray started here stops; detached shards elsewhere stay up
    finally:
        for held in (holder, web_holder):
            if held is not None:
                held.close()
        await connections.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    return 0 if clean else 1
