"""``usher serve``: run the front door with its shards, store and metrics.

Settings come from flags, else ``USHER_*`` environment variables (``RAY_ADDRESS`` too), else
the defaults below. With no URLs, an embedded PostgreSQL and Redis start under ``--data-dir``.
Shards run as Ray actors (a local Ray unless ``--ray-address``); ``--local`` runs one shard in
this process instead, without Ray. ``--demo`` seeds a demo tenant, prints tokens to try it, and
runs the web chat gateway in this process (``--webchat-port``) with a demo page to chat from;
the banner (``core.banner``) names the console and the demo agents' passwords.
SIGTERM or SIGINT stops gracefully (see ``core.api.server``) and exits 0. ``--workers N`` runs
N front-door processes on the same port (``core.workers``); 1 is this process alone.

With Ray shards, committed events reach this front door's feeds through Redis pub/sub
(``core.api.tail.CommitListener``), with the log tail as the gap filler. Commands, offers and
open streams are measured in Prometheus metrics (``core.api.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import sys
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import click
import structlog
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core import housekeeping
from core.api.auth import call_deadline
from core.api.context import ApiContext, within_deadline
from core.api.convert import Refused
from core.api.keepalive import Keepalive
from core.api.local import build_local_context
from core.api.metrics import CountingFeeds, QueueDepth, metered
from core.api.server import Server, Tls, available_servicers, serve
from core.api.streams import StreamLimits
from core.api.web import WebOptions
from core.banner import Banner, Demo
from core.config import StoreSettings
from core.gctune import tune_for_service
from core.routing import commands as c
from core.routing import model as m
from core.runtime.live import TenantLive
from core.runtime.shard import Failure
from core.store import credentials
from core.store.channels import Channel, Channels
from core.store.connect import Connections, connect
from core.store.customers import Customers
from core.store.embedded import EmbeddedPostgres
from core.store.errors import StoreError
from core.store.eventlog import EventLog
from core.store.passwords import Passwords
from core.store.records import Records
from core.store.sessions import Sessions

log = structlog.get_logger(__name__)

DEMO_TENANT = "demo"


class ServeSettings(BaseSettings):
    """Where ``usher serve`` listens and what it attaches to."""

    model_config = SettingsConfigDict(env_prefix="USHER_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 50051
    """The gRPC port; 0 picks a free one."""
    http_port: int = 9090
    """Prometheus metrics on ``http://host:http_port/metrics``; -1 turns them off."""
    webchat_port: int = 8080
    """With ``demo``: the web chat gateway's HTTP port; -1 runs none."""
    web_port: int = 8090
    """The API for browsers (Connect and gRPC-Web, ``core.api.web``); 0 any, -1 none."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    """Origins whose pages may call the web port (``USHER_CORS_ORIGINS``: comma-separated)."""
    public_url: str = ""
    """The web port's address as customers reach it (``https://usher.example.com``): QR codes
    encode ``{public_url}/q/{code}``. Empty: ``http://host:web_port``."""
    data_dir: Path = Path(".usher-data")
    database_url: str | None = None
    redis_url: str | None = None
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("USHER_RAY_ADDRESS", "RAY_ADDRESS")
    )
    shards: int = 2
    local: bool = False
    demo: bool = False
    grace: float = 10.0
    """Seconds in-flight unary calls get to finish on shutdown."""
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    """Front-door processes serving ``port`` (``core.workers``); forced to 1 with ``local``."""
    max_streams_per_credential: int = Field(default=StreamLimits().per_credential, ge=1)
    """Server streams one credential may have open at once, per front-door process."""
    max_streams_per_tenant: int = Field(default=StreamLimits().per_tenant, ge=1)
    """Server streams one tenant may have open at once, per front-door process."""
    keepalive_time: float = Field(default=Keepalive().time, gt=0)
    """Seconds without traffic before the server pings a connection to see it is alive."""
    keepalive_timeout: float = Field(default=Keepalive().timeout, gt=0)
    """Seconds without an answer to that ping before the connection and its calls end."""
    tls_cert: Path | None = None
    """PEM certificate (chain) of the gRPC port; with ``tls_key``, the port serves TLS only."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("--public-url must be an http:// or https:// URL")
        return value.rstrip("/")

    def public_base(self) -> str:
        """Where QR codes' tracking links live: ``public_url``, else the web port here."""
        if self.public_url:
            return self.public_url
        return f"http://{self.host}:{self.web_port}" if self.web_port > 0 else ""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    def web(self) -> WebOptions | None:
        if self.web_port < 0:
            return None
        return WebOptions(self.host, self.web_port, self.cors_origins)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServeSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        return self

    def tls(self) -> Tls | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        return Tls(self.tls_cert, self.tls_key)

    def stream_limits(self) -> StreamLimits:
        return StreamLimits(self.max_streams_per_credential, self.max_streams_per_tenant)

    def keepalive(self) -> Keepalive:
        return Keepalive(time=self.keepalive_time, timeout=self.keepalive_timeout)

    def store(self) -> StoreSettings:
        return StoreSettings(self.data_dir, self.database_url, self.redis_url)


async def _keep_shards_started(handles: list[Any], every: float = 5.0) -> None:
    """Ray restarts a dead shard empty; asking its health starts it (timers, warm-up), so its
    tenants' overdue deadlines fire even when no command comes."""
    while True:
        await asyncio.sleep(every)
        for handle in handles:
            with contextlib.suppress(Exception):  # restarting: asked again next round
                await handle.health.remote()


def configure_logging(*, cache_loggers: bool = True) -> None:
    """structlog JSON lines on stderr. ``cache_loggers=False`` for a command that may run inside
    another process (a test): a logger cached once keeps this configuration for good."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=cache_loggers,
    )


DEMO_AGENTS = (("ann", "Ann"), ("bob", "Bob"))


def demo_password() -> str:
    """A new random password for a demo agent: three groups of six hex digits."""
    return "-".join(secrets.token_hex(3) for _ in range(3))


async def seed_demo(ctx: ApiContext) -> Demo:
    """The demo tenant: two skills, a queue, two agents with new console passwords (their old
    sessions end), a web chat channel (configured afresh each run), and new gateway, agent (ann)
    and admin tokens."""
    t = DEMO_TENANT
    await ctx.pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", t)
    commands: list[c.Command] = [
        c.ConfigureTenant(tenant=t, settings=m.TenantSettings(default_queue="support")),
        c.DefineSkill(tenant=t, skill="billing"),
        c.DefineSkill(tenant=t, skill="english"),
        c.ConfigureQueue(
            tenant=t,
            settings=m.QueueSettings(
                "support", name="Support", requirements=(m.SkillRequirement("english", 1),)
            ),
        ),
        c.ConfigureAgent(
            tenant=t,
            profile=m.AgentProfile("ann", "Ann", {"english": 8, "billing": 5}, capacity=2),
        ),
        c.ConfigureAgent(
            tenant=t, profile=m.AgentProfile("bob", "Bob", {"english": 6}, capacity=2)
        ),
    ]
    # The queue must exist before it is the default: configure the tenant, then again at the end.
    commands = [c.ConfigureTenant(tenant=t), *commands[1:], commands[0]]
    for command in commands:
        outcome = await ctx.submit(command)
        if outcome.failure is not None:
            raise click.ClickException(f"demo seeding failed: {outcome.failure.message}")
    from gateways.webchat import demo as webchat

    channel = Channel(
        webchat.CHANNEL_ID, webchat.CHANNEL_TYPE, webchat.DISPLAY_NAME, webchat.SETTINGS
    )
    channels = Channels(ctx.pool)
    if await channels.create(t, channel) is None:
        await channels.update(t, channel)
    tokens = {}
    for role, agent in (("gateway", None), ("agent", "ann"), ("admin", None)):
        _, tokens[role] = await credentials.create(ctx.pool, t, role, agent)
    passwords, sessions = Passwords(ctx.pool), Sessions(ctx.pool)
    sign_ins = []
    for agent_id, name in DEMO_AGENTS:
        password = demo_password()
        await passwords.set(t, agent_id, password, None)
        await sessions.end_agent(t, agent_id)
        sign_ins.append((agent_id, name, password))
    return Demo(t, tokens, tuple(sign_ins))


Cleanup = Callable[[], Awaitable[None]]


async def start_shards(
    settings: ServeSettings, connections: Connections
) -> tuple[list[Any], str, str]:
    """Join Ray (a local one unless ``ray_address``; ``ray.shutdown()`` leaves it) and the shard
    actors, created if need be and started: their handles, and the database and Redis URLs they
    were given (unredacted)."""
    import ray

    from core.runtime.actor import spawn

    options: dict[str, Any] = {"address": settings.ray_address or None, "namespace": "usher"}
    try:
        ray.init(**options, log_to_driver=False)
    except Exception as exc:  # a local raylet slow to register on a busy machine: once more
        log.warning("ray did not start; trying once more", error=repr(exc))
        ray.shutdown()
        ray.init(**options, log_to_driver=False)
    # The actors need the real URL (the connections hold a redacted one): for the embedded
    # server, join it again here for its URL (never stopped through this handle).
    url = settings.database_url
    if not url:
        url = await asyncio.to_thread(EmbeddedPostgres(settings.data_dir).start)
    # Likewise Redis: an embedded one has no password, so its URL is the one shown.
    redis_url = settings.redis_url or connections.redis_url
    handles = [spawn(i, url, redis_url, shards=settings.shards) for i in range(settings.shards)]
    await asyncio.gather(*(handle.health.remote() for handle in handles))  # start them now
    return handles, url, redis_url


async def _ray_context(
    settings: ServeSettings, connections: Connections
) -> tuple[ApiContext, Cleanup]:
    import ray

    from core.api.tail import CommitListener, LogTail
    from core.runtime.dispatcher import Dispatcher, shard_of

    handles, _, _ = await start_shards(settings, connections)
    watch = asyncio.create_task(_keep_shards_started(handles))
    dispatcher = Dispatcher(handles)
    feeds = CountingFeeds(EventLog(connections.pg).load)
    tail = LogTail(connections.pg, feeds)
    await tail.poll()
    tail.start()
    listener = CommitListener(connections.redis, feeds, resync=tail.poll)
    listener.start()

    async def live(tenant: str) -> TenantLive:
        """One actor call, to the shard that owns the tenant."""
        try:
            figures: TenantLive = await handles[shard_of(tenant, len(handles))].live.remote(tenant)
        except StoreError:  # raised in the shard (Ray keeps its type): its own code
            raise
        except Exception as exc:  # the actor died or is restarting
            raise Refused(Failure("UNAVAILABLE", f"shard unavailable: {exc}")) from exc
        return figures

    ctx = ApiContext(
        submit=within_deadline(metered(dispatcher.submit), call_deadline),
        feeds=feeds,
        pool=connections.pg,
        redis=connections.redis,
        records=Records(connections.pg),
        customers=Customers(connections.pg),
        live=live,
    )

    async def cleanup() -> None:
        watch.cancel()
        await listener.stop()
        await tail.stop()
        ray.shutdown()  # the detached shards stay up for the next front door

    return ctx, cleanup


async def run(
    settings: ServeSettings,
    report: Callable[[Server, str], None] | None = None,
    *,
    upkeep: bool = True,
) -> None:
    """Serve until SIGTERM or SIGINT. Once listening, print the banner; or, given ``report``,
    call ``report(server, metrics)`` instead (a worker of ``core.workers``). With ``upkeep``
    (one process per deployment), run ``core.housekeeping`` in the background meanwhile."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore", UserWarning)
        connections = await connect(settings.store())
    cleanup: Cleanup
    try:
        if settings.local:
            ctx, shard = build_local_context(connections)
            shard.start()
            cleanup = shard.stop
            mode = "in-process shard (--local)"
        else:
            ctx, cleanup = await _ray_context(settings, connections)
            mode = f"{settings.shards} Ray shard actors ({settings.ray_address or 'local Ray'})"
        ctx = dataclasses.replace(ctx, public_url=settings.public_base())
        depth = QueueDepth(connections.pg)
        chores = housekeeping.start(connections.pg) if upkeep else None
        try:
            metrics = _start_metrics(settings)
            if settings.http_port >= 0:
                depth.start()
            demo = await seed_demo(ctx) if settings.demo else None
            chat = None
            if demo is not None and settings.webchat_port >= 0:
                from gateways.webchat.demo import DemoWebChat

                chat = DemoWebChat(
                    api_key=demo.tokens["gateway"],
                    tenant=DEMO_TENANT,
                    host=settings.host,
                    port=settings.webchat_port,
                    data_dir=settings.data_dir / "gateway",
                )

            def ready(server: Server) -> None:
                tune_for_service()
                if report is not None:
                    report(server, metrics)
                    return
                if chat is not None:
                    chat.start(server.host, server.port)
                banner = Banner(
                    grpc=f"{server.host}:{server.port}",
                    services=len(server.served),
                    routing=mode,
                    postgres=connections.database_url,
                    redis=connections.redis_url,
                    metrics=metrics,
                    web=None if server.web is None else server.web.url,
                    cors=web_origins(settings),
                    tls_cert=settings.tls_cert,
                    demo=with_chat(demo, chat),
                )
                for line in banner.lines():
                    click.echo(line)
                sys.stdout.flush()

            await serve(
                ctx,
                host=settings.host,
                port=settings.port,
                servicers=available_servicers(ctx),
                grace=settings.grace,
                stream_limits=settings.stream_limits(),
                keepalive=settings.keepalive(),
                tls=settings.tls(),
                web=settings.web(),
                on_ready=ready,
            )
            if chat is not None:
                await chat.stop()
        finally:
            if chores is not None:
                chores.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chores
            await depth.stop()
            await cleanup()
    finally:
        await connections.close()


def with_chat(demo: Demo | None, chat: Any) -> Demo | None:
    """``demo`` with the demo web chat's page, when one runs."""
    if demo is None or chat is None:
        return demo
    return dataclasses.replace(demo, chat_url=chat.demo_url)


def web_origins(settings: ServeSettings) -> str:
    """The banner's account of which pages may call the web port."""
    return ", ".join(settings.cors_origins) or "none (same-origin pages only)"


def _start_metrics(settings: ServeSettings) -> str:
    if settings.http_port < 0:
        return "off"
    import prometheus_client

    server, _ = prometheus_client.start_http_server(settings.http_port, addr=settings.host)
    return f"http://{settings.host}:{server.server_port}/metrics"


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on [USHER_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="gRPC port, 0 for any [USHER_PORT; 50051].")
@click.option("--http-port", type=int, default=None, help="Metrics port, -1 for none [9090].")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded PostgreSQL and Redis keep their files [.usher-data].",
)
@click.option("--database-url", default=None, help="PostgreSQL URL [embedded].")
@click.option("--redis-url", default=None, help="Redis URL [embedded].")
@click.option("--ray-address", default=None, help="Ray cluster [RAY_ADDRESS; a local Ray].")
@click.option("--shards", type=int, default=None, help="Shard actors [2].")
@click.option("--local", is_flag=True, default=None, help="One in-process shard, no Ray.")
@click.option("--demo", is_flag=True, default=None, help="Seed a demo tenant; print tokens.")
@click.option(
    "--webchat-port", type=int, default=None, help="Demo web chat port, -1 for none [8080]."
)
@click.option(
    "--web-port",
    type=int,
    default=None,
    help="The API for browsers (Connect, gRPC-Web), -1 for none [USHER_WEB_PORT; 8090].",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    default=None,
    help="An origin (https://console.example.com, or *) whose pages may call the web port;"
    " repeat for more [USHER_CORS_ORIGINS, comma-separated; none].",
)
@click.option(
    "--public-url",
    default=None,
    help="The web port's address as customers reach it (https://usher.example.com): QR codes"
    " encode {public-url}/q/{code} [USHER_PUBLIC_URL; http://host:web-port].",
)
@click.option("--grace", type=float, default=None, help="Shutdown grace in seconds [10].")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Front-door processes sharing the gRPC port; worker i serves metrics on --http-port"
    " + i. Always 1 with --local [USHER_WORKERS; the number of cores].",
)
@click.option(
    "--max-streams-per-credential",
    type=click.IntRange(min=1),
    default=None,
    help="Open server streams per credential and process [USHER_MAX_STREAMS_PER_CREDENTIAL; 32].",
)
@click.option(
    "--max-streams-per-tenant",
    type=click.IntRange(min=1),
    default=None,
    help="Open server streams per tenant and process [USHER_MAX_STREAMS_PER_TENANT; 5000].",
)
@click.option(
    "--keepalive-time",
    type=float,
    default=None,
    help="Idle seconds before pinging a client connection [USHER_KEEPALIVE_TIME; 30].",
)
@click.option(
    "--keepalive-timeout",
    type=float,
    default=None,
    help="Seconds to wait for the ping's answer before closing [USHER_KEEPALIVE_TIMEOUT; 10].",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM certificate chain: the gRPC port serves TLS only [USHER_TLS_CERT; plaintext].",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert [USHER_TLS_KEY].",
)
@click.option("--worker-of", type=int, default=None, hidden=True)  # core.workers: parent pid
@click.option("--worker-index", type=int, default=None, hidden=True)  # core.workers: index
def serve_command(worker_of: int | None, worker_index: int | None, **flags: Any) -> None:
    """Run the gRPC front door until SIGTERM or SIGINT."""
    from core import workers

    given = {k: v for k, v in flags.items() if v is not None and v != ()}  # () : not given
    try:
        settings = ServeSettings(**given)
    except ValidationError as exc:
        raise click.UsageError("; ".join(str(e["msg"]) for e in exc.errors())) from None
    configure_logging()
    if worker_of is not None:  # one of several front doors, started by core.workers
        workers.watch_parent(worker_of)
        index = worker_index or 0
        # worker 0 alone runs the upkeep (the parent only supervises, it has no database pool)
        asyncio.run(run(settings, workers.ready_reporter(index), upkeep=index == 0))
    elif workers.worker_count(settings) > 1:
        sys.exit(asyncio.run(workers.supervise(settings)))
    else:
        asyncio.run(run(settings))
