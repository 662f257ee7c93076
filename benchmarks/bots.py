"""The ``bots`` suite: bots answering customers through the shard, against a real PostgreSQL.

The bot: one active bot on a web chat channel whose flow is a question that asks again after
every answer (``Tell me more.``), so each customer message gets exactly one bot reply and the
interpreter, the triggers and the bot's events are on every command's path.

Two rows:

- ``shard``: bot replies a second through one ``Shard`` in this process, fed by the front
  door's own ``Dispatcher`` (commands coalesced into batches and carried as msgpack bytes, as
  over Ray, minus the Ray call): ``conversations`` customers each write, wait for the outcome
  (committed: the customer's message and the bot's reply in the event log, the message rows
  and the flow's projection written), and write again, for ``warmup_seconds`` unmeasured, then
  ``seconds``. ``replies_per_s``: bot replies committed in the window over its length.
- ``grpc``: the latency a customer sees through the real gRPC server (``usher serve --local``
  in a process of its own: the front door over one in-process shard, on the same PostgreSQL
  and Redis): a gateway client in this process sends
  ``ReceiveCustomerMessage`` open-loop at ``rate`` a second (each message at its intended time,
  round robin over ``customers``) and reads its ``StreamOutbound``; a message's latency runs
  from its intended time to the bot's reply arriving on the stream (what a gateway would
  deliver). The first round (each customer's first message, which starts the conversation and
  its flow) is a warm-up: p50 / p99 in ms are over the turns of running flows that follow.

Targets (issue 13): at least 2,000 replies/s through one shard, and a p99 of at most 30 ms at
100 messages/s over gRPC. Without a database URL an embedded PostgreSQL (and, for the gRPC row,
an embedded Redis) starts in a temporary directory; with one, the suite applies pending
migrations and deletes its tenants' rows at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import click
from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks import report
from benchmarks import store as store_suite
from benchmarks.core import Verdict
from benchmarks.loadgen import quantile
from core.bots import codec
from core.bots.flow import (
    Bot,
    BotStatus,
    Content,
    Flow,
    NewConversationTrigger,
    QuestionStep,
)
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.runtime import wire
from core.runtime.dispatcher import Dispatcher
from core.runtime.shard import Shard
from core.store.migrate import migrate

CHANNEL: Final = "web"
REPLY: Final = "Tell me more."
TARGET_REPLIES_PER_S: Final = 2_000.0
TARGET_P99_MS: Final = 30.0

Progress = Callable[[str], None]


def echo_bot() -> Bot:
    """A bot whose one step asks again after every answer: one reply per customer message."""
    return Bot(
        id="echo",
        name="Echo",
        channels=(CHANNEL,),
        status=BotStatus.ACTIVE,
        triggers=(NewConversationTrigger(),),
        flow=Flow(
            start="ask",
            steps=(QuestionStep(id="ask", content=Content(body=REPLY), next="ask"),),
            default_reply="Sorry?",
        ),
    )


@dataclass(frozen=True, slots=True)
class BotsConfig:
    conversations: int = 256
    """Customers writing concurrently through the shard (``shard`` row)."""
    seconds: float = 10.0
    warmup_seconds: float = 2.0
    max_batch: int = 500
    rate: float = 100.0
    """Messages a second over gRPC (``grpc`` row)."""
    grpc_seconds: float = 10.0
    customers: int = 100
    """Customers the gRPC row's messages go round robin over (each writes every
    ``customers / rate`` seconds)."""


def smoke() -> BotsConfig:
    """A run of a few seconds, for tests."""
    return BotsConfig(
        conversations=16, seconds=1.0, warmup_seconds=0.3, rate=20.0, grpc_seconds=1.5, customers=8
    )


@dataclass(frozen=True, slots=True)
class BotsResult:
    replies_per_s: float
    replies: int
    """Bot replies committed in the ``shard`` row's window."""
    batch_mean: float
    """Commands per shard call (the dispatcher's batching)."""
    p50_ms: float
    p99_ms: float
    messages: int
    """Messages of the ``grpc`` row's window (each answered; unanswered ones count in ``lost``)."""
    lost: int
    rate: float

    def verdicts(self) -> list[Verdict]:
        return [
            Verdict(
                "bot replies/s through one shard",
                self.replies_per_s,
                TARGET_REPLIES_PER_S,
                self.replies_per_s >= TARGET_REPLIES_PER_S,
            ),
            Verdict(
                f"p99 ms message -> bot reply over gRPC at {self.rate:g}/s",
                self.p99_ms,
                TARGET_P99_MS,
                self.p99_ms <= TARGET_P99_MS and self.lost == 0,
            ),
        ]

    def document(self) -> dict[str, Any]:
        return {"suite": "bots", **asdict(self), "verdicts": [asdict(v) for v in self.verdicts()]}


# --- the shard row ------------------------------------------------------------------------------


class _InProcess:
    """A ``Dispatcher`` handle over a local shard: the actor's ``submit_encoded``, without Ray."""

    def __init__(self, shard: Shard) -> None:
        self._shard = shard
        self.submit_encoded = self

    async def _call(self, payload: bytes) -> bytes:
        outcomes = await self._shard.submit(wire.decode_commands(payload))
        return wire.encode_outcomes(outcomes)

    def remote(self, payload: bytes) -> asyncio.Task[bytes]:
        return asyncio.ensure_future(self._call(payload))


def _setup(tenant: str) -> list[c.Command]:
    return [
        c.ConfigureTenant(tenant=tenant, settings=m.TenantSettings(default_queue="support")),
        c.ConfigureQueue(tenant=tenant, settings=m.QueueSettings(queue_id="support")),
        c.PublishBot(tenant=tenant, bot=codec.bot_to_json(echo_bot())),
    ]


def _bot_replies(events: Sequence[ev.Event]) -> int:
    return sum(1 for e in events if isinstance(e, ev.MessageRecorded) and e.sender is m.Sender.BOT)


async def run_shard(
    pool: asyncpg.Pool, tenant: str, config: BotsConfig
) -> tuple[float, int, float]:
    """(replies a second, replies, commands per call) through one shard in process."""
    shard = Shard(f"bench-{tenant}", pool, bot_effects=False)
    dispatcher = Dispatcher([_InProcess(shard)], max_batch=config.max_batch, depth=2)
    try:
        for command in _setup(tenant):
            (outcome,) = await shard.submit([command])
            assert outcome.ok, outcome.failure
        loop = asyncio.get_running_loop()
        start = loop.time() + config.warmup_seconds
        end = start + config.seconds
        counted = [0]
        calls_at: list[int] = []
        commands_at: list[int] = []
        sent = [0]

        async def customer(i: int) -> None:
            n = 0
            while loop.time() < end:
                n += 1
                command = c.ReceiveMessage(
                    tenant=tenant,
                    conversation_id=f"c{i}",
                    channel=CHANNEL,
                    customer_id=f"k{i}",
                    message=m.MessageBody(text=f"answer {n}", provider_message_id=f"{i}-{n}"),
                )
                began = loop.time()
                outcome = await dispatcher.submit(command)
                if not outcome.ok:
                    raise RuntimeError(f"refused: {outcome.failure}")
                if start <= began < end:
                    counted[0] += _bot_replies(outcome.events)
                    sent[0] += 1

        async def sample() -> None:
            await asyncio.sleep(max(0.0, start - loop.time()))
            calls_at.append(dispatcher.calls)
            commands_at.append(sent[0])
            await asyncio.sleep(max(0.0, end - loop.time()))
            calls_at.append(dispatcher.calls)
            commands_at.append(sent[0])

        await asyncio.gather(sample(), *(customer(i) for i in range(config.conversations)))
        calls = max(1, calls_at[1] - calls_at[0])
        return counted[0] / config.seconds, counted[0], (commands_at[1] - commands_at[0]) / calls
    finally:
        await shard.stop()


# --- the gRPC row -------------------------------------------------------------------------------


@asynccontextmanager
async def _redis(url: str | None) -> AsyncIterator[str]:
    if url:
        yield url
        return
    from core.store.embedded import EmbeddedRedis

    directory = Path(tempfile.mkdtemp(prefix="usher-bench-redis-"))
    server = EmbeddedRedis(directory)
    try:
        yield await asyncio.to_thread(server.start)
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(directory, ignore_errors=True)


async def run_grpc(
    pool: asyncpg.Pool, database_url: str, redis_url: str, tenant: str, config: BotsConfig
) -> tuple[float, float, int, int]:
    """(p50 ms, p99 ms, messages, lost) of customer message -> bot reply over gRPC, against
    ``usher serve --local`` (one in-process shard) in a process of its own."""
    from google.protobuf import field_mask_pb2
    from usher.client import AdminClient, BotClient, GatewayClient
    from usher.v1 import admin_service_pb2 as apb
    from usher.v1 import bot_service_pb2 as bpb
    from usher.v1 import channel_pb2, conversation_pb2, queue_pb2, tenant_pb2
    from usher.v1 import conversation_service_pb2 as gpb

    from benchmarks.e2e import _discard, _ready, _stop, free_port
    from core.store import credentials

    async def token(role: str) -> str:
        await pool.execute(
            "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant
        )
        _, secret = await credentials.create(pool, tenant, role, None)
        return secret

    data_dir = Path(tempfile.mkdtemp(prefix="usher-bench-bots-"))
    port = free_port()
    log = data_dir / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("USHER_")}
    with log.open("ab") as sink:
        serve = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "core.cli", "serve", "--local", "--host", "127.0.0.1", "--port", str(port)),
            *("--http-port", "-1", "--data-dir", str(data_dir)),
            *("--database-url", database_url, "--redis-url", redis_url),
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
            env=env,
        )
    try:
        await _ready(serve, log)
        assert serve.stdout is not None
        drain = asyncio.create_task(_discard(serve.stdout))
        target = f"127.0.0.1:{port}"
        async with AsyncExitStack() as stack:
            admin = await stack.enter_async_context(AdminClient(target, await token("admin")))
            await admin.create_queue(
                apb.CreateQueueRequest(queue_id="support", queue=queue_pb2.Queue())
            )
            await admin.update_tenant_settings(
                apb.UpdateTenantSettingsRequest(
                    settings=tenant_pb2.TenantSettings(default_queue="queues/support"),
                    update_mask=field_mask_pb2.FieldMask(paths=["default_queue"]),
                )
            )
            await admin.create_channel(
                apb.CreateChannelRequest(
                    channel_id=CHANNEL,
                    channel=channel_pb2.Channel(type=channel_pb2.CHANNEL_TYPE_WEB_CHAT),
                )
            )
            bots = await stack.enter_async_context(BotClient(target, await token("supervisor")))
            await bots.create_bot(
                bpb.CreateBotRequest(bot_id="echo", bot=codec.bot_to_proto(echo_bot()))
            )
            await bots.activate_bot(bpb.ActivateBotRequest(name="bots/echo"))
            gateway = await stack.enter_async_context(GatewayClient(target, await token("gateway")))
            measured = await _measure(gateway, gpb, conversation_pb2, config)
        drain.cancel()
        return measured
    finally:
        await _stop(serve)
        shutil.rmtree(data_dir, ignore_errors=True)


async def _measure(
    gateway: Any, gpb: Any, conversation_pb2: Any, config: BotsConfig
) -> tuple[float, float, int, int]:
    loop = asyncio.get_running_loop()
    pending: dict[str, list[float]] = {}
    latencies: list[float] = []
    stream = gateway.events(channel=CHANNEL)
    ready = asyncio.Event()

    async def read() -> None:
        ready.set()
        async for item in stream:
            if item.WhichOneof("item") != "message":
                continue
            if item.message.sender != conversation_pb2.SENDER_BOT:
                continue
            waiting = pending.get(item.external_id)
            if waiting:
                intended = waiting.pop(0)
                if intended >= 0:
                    latencies.append((loop.time() - intended) * 1000)

    reader = asyncio.create_task(read())
    await ready.wait()
    await asyncio.sleep(0.2)  # the stream is open before the first message
    warm = max(config.customers, int(config.rate * 0.5))  # every conversation started
    total = warm + int(config.rate * config.grpc_seconds)
    origin = loop.time() + 0.05
    sends: list[asyncio.Task[None]] = []

    async def send(i: int, intended: float, measured: bool) -> None:
        customer = f"k{i % config.customers}"
        pending.setdefault(customer, []).append(intended if measured else -1.0)
        await gateway.receive_customer_message(
            gpb.ReceiveCustomerMessageRequest(
                channel=CHANNEL,
                customer=conversation_pb2.CustomerIdentity(external_id=customer),
                message=gpb.CustomerMessage(text=f"answer {i}", provider_message_id=f"m{i}"),
            )
        )

    for i in range(total):
        intended = origin + i / config.rate
        await asyncio.sleep(max(0.0, intended - loop.time()))
        sends.append(asyncio.create_task(send(i, intended, i >= warm)))
    await asyncio.gather(*sends)
    measured = total - warm
    deadline = loop.time() + 5.0
    while len(latencies) < measured and loop.time() < deadline:
        await asyncio.sleep(0.02)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await stream.aclose()
    ordered = sorted(latencies)
    return (
        round(quantile(ordered, 0.50), 2),
        round(quantile(ordered, 0.99), 2),
        measured,
        measured - len(ordered),
    )


# --- the suite ----------------------------------------------------------------------------------


async def run_bots(
    config: BotsConfig,
    database_url: str | None,
    redis_url: str | None,
    progress: Progress | None = None,
) -> BotsResult:
    say = progress or (lambda _: None)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    async with store_suite.database(database_url) as dsn, _redis(redis_url) as rurl:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            say("shard: bot replies through one shard")
            per_s, replies, batch = await run_shard(pool, f"{prefix}-shard", config)
            say(f"grpc: message -> bot reply at {config.rate:g}/s")
            p50, p99, messages, lost = await run_grpc(pool, dsn, rurl, f"{prefix}-grpc", config)
            return BotsResult(
                replies_per_s=round(per_s, 1),
                replies=replies,
                batch_mean=round(batch, 1),
                p50_ms=p50,
                p99_ms=p99,
                messages=messages,
                lost=lost,
                rate=config.rate,
            )
        finally:
            if database_url:
                say("deleting the benchmark's rows")
                await store_suite._forget(pool, prefix)
            await pool.close()


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        click.echo(f"bench bots: {message}", err=True)


@click.command("bots")
@click.option("--database-url", envvar="USHER_DATABASE_URL", default=None)
@click.option("--redis-url", envvar="USHER_REDIS_URL", default=None)
@click.option("--conversations", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=0.5), default=10.0, show_default=True)
@click.option("--rate", type=click.FloatRange(min=1.0), default=100.0, show_default=True)
@click.option("--quick", is_flag=True, help="A smoke run of a few seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON document here.",
)
def bots(
    database_url: str | None,
    redis_url: str | None,
    conversations: int,
    seconds: float,
    rate: float,
    quick: bool,
    as_json: bool,
    out: Path | None,
) -> None:
    """Bot replies/s through one shard in process, and p99 customer message -> bot reply over
    gRPC at a steady rate."""
    from core.serve import configure_logging

    # the shard's log lines go to stderr (stdout is the document); tests run this in process
    configure_logging(cache_loggers=False)
    config = (
        smoke()
        if quick
        else BotsConfig(
            conversations=conversations, seconds=seconds, rate=rate, grpc_seconds=seconds
        )
    )
    result = asyncio.run(run_bots(config, database_url, redis_url, _progress))
    doc = result.document()
    if out is not None:
        report.write_json(doc, out)
    if as_json:
        click.echo(report.dumps(doc))
        return
    table = Table(title="bench bots", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("figure", "value", "target", ""):
        table.add_column(column, justify="left" if column == "figure" else "right")
    table.add_row(
        "bot replies/s through one shard",
        f"{result.replies_per_s:,.0f}",
        f">= {TARGET_REPLIES_PER_S:,.0f}",
        "ok" if result.replies_per_s >= TARGET_REPLIES_PER_S else "MISSED",
    )
    table.add_row("commands per shard call", f"{result.batch_mean:,.1f}", "", "")
    table.add_row(f"p50 ms over gRPC at {rate:g}/s", f"{result.p50_ms:,.1f}", "", "")
    table.add_row(
        f"p99 ms over gRPC at {result.rate:g}/s",
        f"{result.p99_ms:,.1f}",
        f"<= {TARGET_P99_MS:g}",
        "ok" if result.p99_ms <= TARGET_P99_MS and not result.lost else "MISSED",
    )
    table.add_row("messages measured / unanswered", f"{result.messages} / {result.lost}", "", "")
    Console().print(table)
