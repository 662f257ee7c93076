"""The ``broadcast`` suite: one broadcast to a group of ``recipients`` customers, sent by the real
SMS gateway through a local fake provider, measured end to end.

The system, as deployed: the core's front door (``core.api``: every service, one in-process
shard) in this process over PostgreSQL (``--database-url``, else an embedded one) and Redis
(``--redis-url``, else an embedded one); the SMS gateway as a child process (``usher gateway
sms``: its directory, outbound loop and broadcast sender, with ``concurrency`` sends in flight
and the channel's ``broadcast_rate`` at ``rate``); the fake Twilio (``benchmarks.broadcast_fake``,
a bare asyncio server) as another child process. The customers, their ``city`` field and the
group are seeded with COPY; the broadcast is created, previewed and sent through the SDK as an
admin would (``prepare_s``: SendBroadcast, which renders and stores every recipient and reserves
the quota in one transaction).

Figures:

- ``sends_per_s``: recipients over the time from the provider's first message to its last.
- ``enqueue_to_provider_p50_ms`` / ``_p99_ms``: from the claim that hands a send to the gateway
  (``broadcast_recipients.claimed_at``, the claim's transaction time) to the fake receiving it
  (one machine, one clock). A claim holds about two seconds of sends at the rate, so a send
  may wait behind its batch's others: this is what a recipient waits once the gateway has it.
- ``duplicates``: messages the provider got beyond one per recipient (must be 0); ``missing``:
  recipients it never got (must be 0); every recipient's stored state must be SENT.
- ``gateway_peak_rss_mib``, ``gateway_rss_growth_mib``: the gateway process's resident memory,
  sampled twice a second: its peak, and its growth from a tenth of the way to the end (flat:
  the sender holds one claim's batch at a time, whatever the audience). ``core_peak_rss_mib``
  is this process's (the front door, the shard and the benchmark's own books).
- ``gateway_cpu``, ``core_cpu``, ``fake_cpu``: cores busy while sending (1.0: one core).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import click
import httpx
import redis.asyncio as aioredis
from rich import box
from rich.console import Console
from rich.table import Table
from usher.client import AdminClient, BroadcastClient
from usher.v1 import admin_service_pb2, channel_pb2
from usher.v1 import broadcast_service_pb2 as bpb

from benchmarks import procstat, report
from benchmarks.core import percentile
from benchmarks.store import _forget, database
from core.api.auth import RateLimit
from core.api.local import build_local_context
from core.api.server import Server, available_servicers
from core.store import credentials
from core.store.connect import Connections, create_pool
from core.store.embedded import EmbeddedRedis
from core.store.migrate import migrate

Progress = Callable[[str], None]
CITIES: Final = ("Kowloon", "Sha Tin", "Tsuen Wan", "Central", "Mong Kok", "Tai Po")
NAMES: Final = ("Chan Tai Man", "Wong Siu Ming", "陈大文", "李小明", "สมชาย ใจดี", "Alice Lee")
TEXT: Final = "Hi {customer.name}, the {customer.fields.city} store opens Saturday."
TARGET_SENDS_PER_S: Final = 1_000.0
WAIT: Final = 3_600.0


@dataclass(frozen=True, slots=True)
class BroadcastConfig:
    recipients: int = 100_000
    rate: float = 5_000.0
    """The channel's ``broadcast_rate``: above what the machine sends, so it does not limit."""
    concurrency: int = 64
    """Sends in flight in the gateway."""
    seed: int = 1


def smoke(config: BroadcastConfig) -> BroadcastConfig:
    """A smoke size that runs in seconds."""
    return BroadcastConfig(2_000, config.rate, config.concurrency, config.seed)


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    recipients: int
    sends_per_s: float
    enqueue_to_provider_p50_ms: float
    enqueue_to_provider_p99_ms: float
    duplicates: int
    missing: int
    not_sent: int
    """Recipients whose stored state is not SENT at the end (must be 0)."""
    gateway_peak_rss_mib: float
    gateway_rss_growth_mib: float
    core_peak_rss_mib: float
    gateway_cpu: float
    core_cpu: float
    fake_cpu: float
    prepare_s: float
    send_s: float
    seed_rows_per_s: float

    def document(self) -> dict[str, Any]:
        return {
            "suite": "broadcast",
            **{k: getattr(self, k) for k in self.__slots__},
            "target_sends_per_s": TARGET_SENDS_PER_S,
            "meets_target": self.sends_per_s >= TARGET_SENDS_PER_S
            and self.duplicates == 0
            and self.missing == 0
            and self.not_sent == 0,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def seed(conn: asyncpg.Connection, tenant: str, config: BroadcastConfig) -> float:
    """The tenant, its ``city`` field, ``recipients`` customers with unique phones, all in the
    static group ``all``; rows a second."""
    rng = random.Random(config.seed)
    started = time.perf_counter()
    await conn.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
    await conn.execute(
        "INSERT INTO customer_fields (tenant_id, field_key, display_name, type)"
        " VALUES ($1, 'city', 'City', 'text')",
        tenant,
    )
    await conn.execute(
        "INSERT INTO customer_groups (tenant_id, group_id, display_name) VALUES ($1, 'all', 'All')",
        tenant,
    )
    customers = [
        (
            tenant,
            f"c{i:07d}",
            f"{rng.choice(NAMES)} {i}",
            f"+8526{i:07d}",
            json.dumps({"city": rng.choice(CITIES)}, ensure_ascii=False),
        )
        for i in range(config.recipients)
    ]
    await conn.execute("CREATE TEMP TABLE seed_customers (LIKE customers INCLUDING DEFAULTS)")
    await conn.copy_records_to_table(
        "seed_customers",
        records=customers,
        columns=("tenant_id", "customer_id", "name", "phone", "fields"),
    )
    await conn.execute("INSERT INTO customers SELECT * FROM seed_customers")
    await conn.execute("DROP TABLE seed_customers")
    await conn.copy_records_to_table(
        "customer_group_members",
        records=[(tenant, "all", c[1]) for c in customers],
        columns=("tenant_id", "group_id", "customer_id"),
    )
    await conn.execute("ANALYZE customers")
    await conn.execute("ANALYZE customer_group_members")
    return 2 * config.recipients / (time.perf_counter() - started)


@contextlib.asynccontextmanager
async def _redis(url: str | None) -> AsyncIterator[str]:
    if url:
        yield url
        return
    directory = Path(tempfile.mkdtemp(prefix="usher-bench-redis-"))
    server = EmbeddedRedis(directory)
    try:
        yield await asyncio.to_thread(server.start)
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def _child(args: list[str], log: Path, env: dict[str, str]) -> AsyncIterator[int]:
    """A child process for the duration (its pid); killed and reaped on the way out."""
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            *args, stdout=sink, stderr=sink, env={**os.environ, **env}
        )
    try:
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10.0)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _until(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError, OSError):
            found = await probe()
            if found:
                return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def run_broadcast(
    config: BroadcastConfig,
    url: str | None,
    redis_url: str | None,
    progress: Progress | None = None,
) -> BroadcastResult:
    say = progress or (lambda _: None)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = f"{prefix}-broadcast"
    work = Path(tempfile.mkdtemp(prefix="usher-bench-broadcast-"))
    async with database(url) as dsn, _redis(redis_url) as rurl:
        pool = await create_pool(dsn, min_size=2, max_size=12)
        client = aioredis.Redis.from_url(rurl)
        ctx, shard = build_local_context(Connections(pool, client, dsn, rurl))
        server = Server(
            ctx,
            available_servicers(ctx),
            host="127.0.0.1",
            port=0,
            rate_limit=RateLimit(limit=1_000_000, window=1.0),
        )
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                say(f"seeding {config.recipients:,} customers")
                seeded = await seed(conn, tenant, config)
            shard.start()
            await server.start()
            return await _measure(config, pool, server, tenant, work, seeded, say)
        finally:
            await server.stop(grace=1.0)
            await shard.stop()
            if url:
                say("deleting the benchmark's rows")
                await _forget(pool, prefix)
            await client.aclose()
            await pool.close()
            shutil.rmtree(work, ignore_errors=True)


async def _measure(
    config: BroadcastConfig,
    pool: asyncpg.Pool,
    server: Server,
    tenant: str,
    work: Path,
    seeded: float,
    say: Progress,
) -> BroadcastResult:
    target = f"127.0.0.1:{server.port}"
    _, admin_token = await credentials.create(pool, tenant, "admin")
    _, gateway_token = await credentials.create(pool, tenant, "gateway")
    fake_port, gateway_port = _free_port(), _free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    async with (
        AdminClient(target, admin_token) as admin,
        BroadcastClient(target, admin_token, timeout=600.0) as broadcasts,
        httpx.AsyncClient(timeout=30.0) as http,
        _child(
            [sys.executable, "-m", "benchmarks.broadcast_fake", "--port", str(fake_port)],
            work / "fake.log",
            {},
        ) as fake_pid,
    ):
        await admin.create_channel(
            admin_service_pb2.CreateChannelRequest(
                channel_id="sms",
                channel=channel_pb2.Channel(
                    type=channel_pb2.CHANNEL_TYPE_SMS,
                    settings={
                        "api_base_url": fake_url,
                        "from_number": "+15005550006",
                        "broadcast_rate": str(config.rate),
                    },
                    secrets={"account_sid": "AC" + "0" * 32, "auth_token": "bench"},
                ),
            )
        )
        await _until(lambda: http.get(f"{fake_url}/_stats"), "the fake provider")
        gateway_args = [
            *(sys.executable, "-m", "core.cli", "gateway", "sms"),
            *("--core", target, "--api-key", gateway_token, "--port", str(gateway_port)),
            *("--data-dir", str(work / "gateway")),
        ]
        env = {"USHER_GATEWAY_BROADCAST_CONCURRENCY": str(config.concurrency)}
        async with _child(gateway_args, work / "gateway.log", env) as gateway_pid:

            async def healthy() -> bool:
                answer = await http.get(f"http://127.0.0.1:{gateway_port}/healthz")
                return answer.status_code == 200 and f"{tenant}/sms" in answer.text

            await _until(healthy, "the gateway")
            await broadcasts.create_broadcast(
                bpb.CreateBroadcastRequest(
                    broadcast_id="bench",
                    broadcast=bpb.Broadcast(
                        channel="channels/sms",
                        content=bpb.BroadcastContent(text=TEXT, link="https://example.com/b"),
                        audience=bpb.BroadcastAudience(groups=["customerGroups/all"]),
                    ),
                )
            )
            say(f"sending to {config.recipients:,}")
            started = time.perf_counter()
            await broadcasts.send_broadcast(bpb.SendBroadcastRequest(name="broadcasts/bench"))
            prepare = time.perf_counter() - started
            pids = {"gateway": [gateway_pid], "core": [os.getpid()], "fake": [fake_pid]}
            ticks = {k: procstat.cpu_ticks(v) for k, v in pids.items()}
            sending = time.perf_counter()
            samples: list[tuple[int, int]] = []  # (received, gateway rss)
            while True:
                stats = (await http.get(f"{fake_url}/_stats?count")).json()
                samples.append((stats["received"], procstat.rss_bytes([gateway_pid])))
                found = await broadcasts.get_broadcast(
                    bpb.GetBroadcastRequest(name="broadcasts/bench")
                )
                if found.broadcast.state == bpb.BROADCAST_STATE_COMPLETED:
                    break
                if time.perf_counter() - sending > WAIT:
                    raise RuntimeError("the broadcast did not complete")
                await asyncio.sleep(0.5)
            seconds = time.perf_counter() - sending
            cpu = {
                k: (procstat.cpu_ticks(v) - ticks[k]) / procstat.TICKS_PER_S / seconds
                for k, v in pids.items()
            }
            samples.append((samples[-1][0], procstat.rss_bytes([gateway_pid])))
        stats = (await http.get(f"{fake_url}/_stats")).json()
    claimed = {
        r["address"]: r["claimed"]
        for r in await pool.fetch(
            "SELECT address, extract(epoch FROM claimed_at)::float8 AS claimed"
            " FROM broadcast_recipients WHERE tenant_id = $1 AND broadcast_id = 'bench'",
            tenant,
        )
    }
    not_sent = await pool.fetchval(
        "SELECT count(*) FROM broadcast_recipients WHERE tenant_id = $1"
        " AND broadcast_id = 'bench' AND state <> 'sent'",
        tenant,
    )
    first: dict[str, float] = stats["first"]
    waits = sorted(int((t - claimed[a]) * 1e6) for a, t in first.items() if a in claimed)
    arrivals = sorted(first.values())
    span = (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    tenth = next((rss for n, rss in samples if n >= config.recipients // 10), samples[0][1])
    peak = max(rss for _, rss in samples)
    mib = 1024 * 1024
    return BroadcastResult(
        recipients=config.recipients,
        sends_per_s=round(len(arrivals) / span, 1),
        enqueue_to_provider_p50_ms=percentile(waits, 0.50) / 1e3,
        enqueue_to_provider_p99_ms=percentile(waits, 0.99) / 1e3,
        duplicates=int(stats["duplicates"]),
        missing=config.recipients - int(stats["distinct"]),
        not_sent=int(not_sent),
        gateway_peak_rss_mib=round(peak / mib, 1),
        gateway_rss_growth_mib=round((samples[-1][1] - tenth) / mib, 1),
        core_peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        gateway_cpu=round(cpu["gateway"], 2),
        core_cpu=round(cpu["core"], 2),
        fake_cpu=round(cpu["fake"], 2),
        prepare_s=round(prepare, 2),
        send_s=round(seconds, 2),
        seed_rows_per_s=round(seeded),
    )


def run(
    config: BroadcastConfig, url: str | None, redis_url: str | None, progress: Progress | None
) -> BroadcastResult:
    return asyncio.run(run_broadcast(config, url, redis_url, progress))


COLUMNS: Final = (
    ("recipients", "recipients", "{:,}"),
    ("sends_per_s", "sends/s", "{:,.0f}"),
    ("enqueue_to_provider_p50_ms", "enqueue→provider p50 ms", "{:,.1f}"),
    ("enqueue_to_provider_p99_ms", "enqueue→provider p99 ms", "{:,.1f}"),
    ("duplicates", "duplicates", "{:,}"),
    ("missing", "missing", "{:,}"),
    ("gateway_peak_rss_mib", "gateway peak RSS MiB", "{:,.1f}"),
    ("gateway_rss_growth_mib", "gateway RSS growth MiB", "{:+,.1f}"),
    ("core_peak_rss_mib", "core peak RSS MiB", "{:,.1f}"),
    ("gateway_cpu", "gateway cores", "{:.2f}"),
    ("core_cpu", "core cores", "{:.2f}"),
    ("prepare_s", "SendBroadcast s", "{:,.2f}"),
    ("send_s", "sending s", "{:,.1f}"),
)


@click.command("broadcast")
@click.option("--recipients", type=click.IntRange(min=10), default=100_000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=5_000.0,
    show_default=True,
    help="The channel's broadcast_rate (messages/s).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=256),
    default=64,
    show_default=True,
    help="Sends in flight in the gateway.",
)
@click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="PostgreSQL to use: pending migrations are applied, the benchmark's rows deleted "
    "afterwards [default: an embedded one in a temporary directory].",
)
@click.option(
    "--redis-url",
    envvar="USHER_REDIS_URL",
    show_envvar=True,
    default=None,
    help="Redis to use [default: an embedded one].",
)
@click.option("--quick", is_flag=True, help="A smoke size (2,000 recipients): seconds.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
def broadcast(
    recipients: int,
    rate: float,
    concurrency: int,
    database_url: str | None,
    redis_url: str | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """One broadcast to a group through the SMS gateway and a local fake provider: sends/s,
    enqueue→provider p50/p99, duplicates (must be 0), the gateway's peak memory and its growth.

    How it is measured is described in benchmarks/broadcast.py.
    """
    config = BroadcastConfig(recipients, rate, concurrency, seed)
    if quick:
        config = smoke(config)
    say = (lambda text: click.echo(f"broadcast: {text}", err=True)) if sys.stderr.isatty() else None
    try:
        result = run(config, database_url, redis_url, say)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    document = result.document()
    if out is not None:
        report.write_json(document, out)
    if as_json:
        click.echo(report.dumps(document))
        return
    table = Table(title="bench broadcast", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, title, form in COLUMNS:
        table.add_row(title, form.format(document[key]))
    console = Console()
    console.print(table)
    verdict = "meets" if document["meets_target"] else "misses"
    console.print(
        f"  {verdict} the target: ≥ {TARGET_SENDS_PER_S:,.0f} sends/s, no duplicate or missing"
    )
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
