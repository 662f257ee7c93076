"""The cluster the chaos suite faults: PostgreSQL and Redis, a local Ray with the RouterShard
actors (started here, as ``usher serve`` would start them), and front doors ``usher serve
--ray-address`` as child processes on fixed ports (a restarted door answers where the old one
did).

Stores: by default embedded ones under a temporary directory, started by this process, so the
faults are real (SIGSTOP of every PostgreSQL process; Redis stopped and started again on the
same socket and dump). Given URLs (the machine's shared services), the suite never signals
them: the service reaches them through a ``StoreProxy`` that stalls or cuts the connections.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import procstat
from benchmarks.chaos.proxy import StoreProxy
from core.runtime.dispatcher import shard_of
from core.runtime.live import TenantLive
from core.store.embedded import EmbeddedPostgres, EmbeddedRedis
from core.store.migrate import migrate

READY_WAIT = 120.0
"""Seconds a front door has to print its banner (a safety net)."""
SHARD_TITLE = "ray::RouterShard"

Progress = Callable[[str], None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stores(abc.ABC):
    """PostgreSQL and Redis as the service sees them (``database_url``, ``redis_url``), the
    direct URL the audit reads through, and the two store faults."""

    def __init__(self, database_url: str, direct_url: str, redis_url: str) -> None:
        self.database_url = database_url
        self.direct_url = direct_url
        self.redis_url = redis_url

    @property
    @abc.abstractmethod
    def how(self) -> str:
        """How the faults are made, for the report."""

    @abc.abstractmethod
    async def pause_postgres(self) -> None: ...

    @abc.abstractmethod
    async def resume_postgres(self) -> None: ...

    @abc.abstractmethod
    async def stop_redis(self) -> None: ...

    @abc.abstractmethod
    async def start_redis(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Lift whatever fault is still on."""


class EmbeddedStores(Stores):
    """This run's own embedded servers: SIGSTOP/SIGCONT every PostgreSQL process; Redis stopped
    (SIGTERM, it saves its dump) and launched again."""

    def __init__(self, data_dir: Path, database_url: str, redis: EmbeddedRedis) -> None:
        super().__init__(database_url, database_url, f"unix://{redis.socket}")
        self._postmaster = data_dir.resolve() / "postgres" / "postmaster.pid"
        self._redis = redis
        self._stopped: list[int] = []

    @property
    def how(self) -> str:
        return "embedded: PostgreSQL SIGSTOPped, Redis stopped"

    def postgres_pids(self) -> list[int]:
        try:
            return procstat.tree(int(self._postmaster.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return []

    async def pause_postgres(self) -> None:
        # The postmaster first, so that it forks no backend we would miss; then the rest.
        for pid in self.postgres_pids()[:1]:
            self._signal_stop(pid)
        for pid in self.postgres_pids()[1:]:
            self._signal_stop(pid)

    def _signal_stop(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
            self._stopped.append(pid)

    async def resume_postgres(self) -> None:
        stopped, self._stopped = self._stopped, []
        for pid in reversed(stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    async def stop_redis(self) -> None:
        pid = self._redis._server_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        while procstat.cmdline(pid):
            await asyncio.sleep(0.05)

    async def start_redis(self) -> None:
        await asyncio.to_thread(self._redis.start)

    async def close(self) -> None:
        await self.resume_postgres()


class ProxiedStores(Stores):
    """The machine's shared servers behind proxies: PostgreSQL stalled, Redis cut."""

    def __init__(self, database_url: str, postgres: StoreProxy, redis: StoreProxy) -> None:
        super().__init__(postgres.url, database_url, redis.url)
        self._postgres = postgres
        self._redis = redis

    @property
    def how(self) -> str:
        return "given URLs through proxies: PostgreSQL stalled, Redis cut (servers untouched)"

    async def pause_postgres(self) -> None:
        self._postgres.stall()

    async def resume_postgres(self) -> None:
        self._postgres.resume()

    async def stop_redis(self) -> None:
        await self._redis.cut()

    async def start_redis(self) -> None:
        await self._redis.restore()

    async def close(self) -> None:
        await self._postgres.close()
        await self._redis.close()


@dataclass
class Door:
    """One front door, ``usher serve --ray-address`` with one worker; ``start()`` again after a
    kill runs a fresh process on the same port."""

    args: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    _drain: asyncio.Task[None] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "core.cli", "serve"),
                *("--host", "127.0.0.1", "--port", str(self.port), *self.args),
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
                env=self.env,
            )
        try:
            await asyncio.wait_for(self._ready(), READY_WAIT)
        except BaseException:
            await self.kill()
            raise
        assert self.process.stdout is not None
        self._drain = asyncio.create_task(_discard(self.process.stdout))

    async def _ready(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            if raw.decode().startswith("usher: metrics: "):  # the banner's last line
                return
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"usher serve exited before it was ready:\n{tail}")

    async def kill(self) -> None:
        """SIGKILL, and reap; harmless when it is not running."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
            self._drain = None


async def _discard(stream: asyncio.StreamReader) -> None:
    async for _ in stream:
        pass


@dataclass
class Cluster:
    stores: Stores
    doors: list[Door]
    ray_address: str
    shards: int
    data_dir: Path

    async def live(self, tenant: str) -> TenantLive:
        """The tenant's live figures, read from the shard that owns it."""
        import ray

        from core.runtime.actor import NAMESPACE, shard_name

        actor = ray.get_actor(shard_name(shard_of(tenant, self.shards)), namespace=NAMESPACE)
        live: TenantLive = await actor.live.remote(tenant)
        return live

    def shard_pids(self) -> list[int]:
        """The shard actors' processes now (Ray runs under this process)."""
        return sorted(
            pid
            for pid in procstat.tree(os.getpid())
            if procstat.cmdline(pid).startswith(SHARD_TITLE)
        )


def _start_ray(shards: int) -> str:
    """A local Ray of this process's own (never one named by RAY_ADDRESS)."""
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    ray.init(
        address="local",
        num_cpus=max(2, shards),
        include_dashboard=False,
        namespace="usher",
        log_to_driver=False,
        configure_logging=False,
    )
    return str(ray.get_runtime_context().gcs_address)


async def _spawn_shards(database_url: str, redis_url: str, shards: int) -> list[Any]:
    from core.runtime.actor import spawn

    handles = [spawn(i, database_url, redis_url, shards=shards) for i in range(shards)]
    await asyncio.gather(*(h.health.remote() for h in handles))
    return handles


@contextlib.asynccontextmanager
async def running_cluster(
    *,
    shards: int,
    doors: int,
    database_url: str | None,
    redis_url: str | None,
    say: Progress,
) -> AsyncIterator[Cluster]:
    """Start everything (module docstring); stop it all afterwards, faults lifted first."""
    import ray

    if (database_url is None) != (redis_url is None):
        raise ValueError("give both --database-url and --redis-url, or neither")
    data_dir = Path(tempfile.mkdtemp(prefix="usher-bench-chaos-"))
    stack = contextlib.AsyncExitStack()
    try:
        async with stack:
            stores: Stores
            if database_url is None or redis_url is None:
                say("starting embedded PostgreSQL and Redis")
                postgres = EmbeddedPostgres(data_dir)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    url = await asyncio.to_thread(postgres.start)
                stack.push_async_callback(asyncio.to_thread, postgres.stop)
                redis = EmbeddedRedis(data_dir)
                await asyncio.to_thread(redis.start)
                stack.push_async_callback(asyncio.to_thread, redis.stop)
                stores = EmbeddedStores(data_dir, url, redis)
            else:
                pg_proxy, redis_proxy = StoreProxy(database_url, 5432), StoreProxy(redis_url, 6379)
                await pg_proxy.start()
                await redis_proxy.start()
                stores = ProxiedStores(database_url, pg_proxy, redis_proxy)
            stack.push_async_callback(stores.close)  # runs before the stores stop
            conn = await asyncpg.connect(stores.direct_url)
            try:
                await migrate(conn)
            finally:
                await conn.close()

            say(f"starting Ray and {shards} shard actors")
            address = _start_ray(shards)
            stack.callback(ray.shutdown)
            handles = await _spawn_shards(stores.database_url, stores.redis_url, shards)
            stack.callback(_kill_all, handles)

            say(f"starting {doors} front door(s)")
            # After Ray started: it leaves what a client needs (e.g. its auth mode) in os.environ.
            env = {
                k: v
                for k, v in os.environ.items()
                if k != "RAY_ADDRESS" and not k.startswith("USHER_")
            }
            args = [
                *("--ray-address", address, "--shards", str(shards), "--workers", "1"),
                *("--http-port", "-1", "--grace", "2", "--data-dir", str(data_dir)),
                *("--database-url", stores.database_url, "--redis-url", stores.redis_url),
            ]
            started = [Door(args, env, data_dir / f"door-{n}.log") for n in range(doors)]
            for door in started:
                stack.push_async_callback(door.kill)
            await asyncio.gather(*(door.start() for door in started))
            yield Cluster(stores, started, address, shards, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _kill_all(handles: list[Any]) -> None:
    import ray

    for handle in handles:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)
