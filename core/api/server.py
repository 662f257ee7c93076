"""The front door: a ``grpc.aio`` server with auth, limits, health, reflection and a clean stop.

``Server`` owns one ``grpc.aio.Server``: ``start()`` binds (port 0 picks a free port) and
reports SERVING through the standard health service once the servicers are registered;
``stop(grace)`` is the graceful path: health goes NOT_SERVING, open feed streams end with
UNAVAILABLE "server shutting down", new calls are refused, and unary calls in flight get
``grace`` seconds to finish. ``serve()`` runs a server until SIGTERM or SIGINT and then stops it
that way. Which servicers run is a parameter; ``available_servicers(ctx)`` finds those whose
modules exist (``core.api.admin``, ``conversations``, ``agents``, ``supervisors``). Server
streams are capped, counted and ended with their calls by ``core.api.streams.StreamGuard``;
keepalive pings find dead peers (``core.api.keepalive``). With ``web`` options the same
services are also served to browsers (Connect and gRPC-Web, ``core.api.web``) by relaying each
call to this server over a local socket, so every interceptor applies to them too; that port
also answers QR codes' tracking links (``/q/{code}``, ``core.api.tracking``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from usher.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    agent_service_pb2,
    agent_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
    blocklist_service_pb2,
    blocklist_service_pb2_grpc,
    bot_service_pb2,
    bot_service_pb2_grpc,
    broadcast_service_pb2,
    broadcast_service_pb2_grpc,
    canned_reply_service_pb2,
    canned_reply_service_pb2_grpc,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    customer_service_pb2,
    customer_service_pb2_grpc,
    follow_up_service_pb2,
    follow_up_service_pb2_grpc,
    knowledge_service_pb2,
    knowledge_service_pb2_grpc,
    qr_code_service_pb2,
    qr_code_service_pb2_grpc,
    quota_service_pb2,
    quota_service_pb2_grpc,
    record_service_pb2,
    record_service_pb2_grpc,
    report_service_pb2,
    report_service_pb2_grpc,
    supervisor_service_pb2,
    supervisor_service_pb2_grpc,
    team_chat_service_pb2,
    team_chat_service_pb2_grpc,
)

from core.api.auth import DEFAULT_RATE_LIMIT, Authenticator, RateLimit
from core.api.context import ApiContext
from core.api.drain import Drain
from core.api.keepalive import Keepalive
from core.api.streams import StreamGuard, StreamLimits
from core.api.validation import Limits
from core.api.web import WebOptions, WebServer

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_GRACE = 10.0
"""Seconds unary calls in flight get to finish after a stop begins."""


@dataclass(frozen=True, slots=True)
class Servicer:
    """A servicer and how to register it: ``add(servicer, server)`` (the generated
    ``add_<Service>Servicer_to_server``), under its full service name."""

    name: str
    servicer: object
    add: Callable[[Any, grpc.aio.Server], None]


@dataclass(frozen=True, slots=True)
class _Known:
    module: str
    base: type
    add: Callable[[Any, grpc.aio.Server], None]
    name: str


def _service_name(module: Any, short: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[short].full_name)


KNOWN = (
    _Known(
        "core.api.conversations",
        conversation_service_pb2_grpc.ConversationServiceServicer,
        conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server,
        _service_name(conversation_service_pb2, "ConversationService"),
    ),
    _Known(
        "core.api.agents",
        agent_service_pb2_grpc.AgentServiceServicer,
        agent_service_pb2_grpc.add_AgentServiceServicer_to_server,
        _service_name(agent_service_pb2, "AgentService"),
    ),
    _Known(
        "core.api.supervisors",
        supervisor_service_pb2_grpc.SupervisorServiceServicer,
        supervisor_service_pb2_grpc.add_SupervisorServiceServicer_to_server,
        _service_name(supervisor_service_pb2, "SupervisorService"),
    ),
    _Known(
        "core.api.admin",
        admin_service_pb2_grpc.AdminServiceServicer,
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server,
        _service_name(admin_service_pb2, "AdminService"),
    ),
    _Known(
        "core.api.blocklist_service",
        blocklist_service_pb2_grpc.BlocklistServiceServicer,
        blocklist_service_pb2_grpc.add_BlocklistServiceServicer_to_server,
        _service_name(blocklist_service_pb2, "BlocklistService"),
    ),
    _Known(
        "core.api.follow_up_service",
        follow_up_service_pb2_grpc.FollowUpServiceServicer,
        follow_up_service_pb2_grpc.add_FollowUpServiceServicer_to_server,
        _service_name(follow_up_service_pb2, "FollowUpService"),
    ),
    _Known(
        "core.api.records_service",
        record_service_pb2_grpc.RecordServiceServicer,
        record_service_pb2_grpc.add_RecordServiceServicer_to_server,
        _service_name(record_service_pb2, "RecordService"),
    ),
    _Known(
        "core.api.customer_service",
        customer_service_pb2_grpc.CustomerServiceServicer,
        customer_service_pb2_grpc.add_CustomerServiceServicer_to_server,
        _service_name(customer_service_pb2, "CustomerService"),
    ),
    _Known(
        "core.api.bot_service",
        bot_service_pb2_grpc.BotServiceServicer,
        bot_service_pb2_grpc.add_BotServiceServicer_to_server,
        _service_name(bot_service_pb2, "BotService"),
    ),
    _Known(
        "core.api.canned_reply_service",
        canned_reply_service_pb2_grpc.CannedReplyServiceServicer,
        canned_reply_service_pb2_grpc.add_CannedReplyServiceServicer_to_server,
        _service_name(canned_reply_service_pb2, "CannedReplyService"),
    ),
    _Known(
        "core.api.knowledge_service",
        knowledge_service_pb2_grpc.KnowledgeServiceServicer,
        knowledge_service_pb2_grpc.add_KnowledgeServiceServicer_to_server,
        _service_name(knowledge_service_pb2, "KnowledgeService"),
    ),
    _Known(
        "core.api.broadcast_service",
        broadcast_service_pb2_grpc.BroadcastServiceServicer,
        broadcast_service_pb2_grpc.add_BroadcastServiceServicer_to_server,
        _service_name(broadcast_service_pb2, "BroadcastService"),
    ),
    _Known(
        "core.api.qr_code_service",
        qr_code_service_pb2_grpc.QrCodeServiceServicer,
        qr_code_service_pb2_grpc.add_QrCodeServiceServicer_to_server,
        _service_name(qr_code_service_pb2, "QrCodeService"),
    ),
    _Known(
        "core.api.quota_service",
        quota_service_pb2_grpc.QuotaServiceServicer,
        quota_service_pb2_grpc.add_QuotaServiceServicer_to_server,
        _service_name(quota_service_pb2, "QuotaService"),
    ),
    _Known(
        "core.api.report_service",
        report_service_pb2_grpc.ReportServiceServicer,
        report_service_pb2_grpc.add_ReportServiceServicer_to_server,
        _service_name(report_service_pb2, "ReportService"),
    ),
    _Known(
        "core.api.auth_service",
        auth_service_pb2_grpc.AuthServiceServicer,
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server,
        _service_name(auth_service_pb2, "AuthService"),
    ),
    _Known(
        "core.api.team_chat_service",
        team_chat_service_pb2_grpc.TeamChatServiceServicer,
        team_chat_service_pb2_grpc.add_TeamChatServiceServicer_to_server,
        _service_name(team_chat_service_pb2, "TeamChatService"),
    ),
)
USHER_SERVICES = tuple(k.name for k in KNOWN)


def available_servicers(ctx: ApiContext) -> list[Servicer]:
    """A servicer for each ``usher.v1`` service whose module exists: the module's subclass of
    the generated ``<Service>Servicer``, built with ``ctx``. A missing module, or one without
    such a class, is logged and skipped (its service answers UNIMPLEMENTED)."""
    found = []
    for known in KNOWN:
        try:
            module = importlib.import_module(known.module)
        except ImportError as exc:
            log.warning("servicer not available", module=known.module, error=str(exc))
            continue
        classes = [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, known.base)
            and value is not known.base
            and value.__module__ == module.__name__
        ]
        if len(classes) != 1:
            log.warning("no single servicer class", module=known.module, found=len(classes))
            continue
        servicer_class: Any = classes[0]
        found.append(Servicer(known.name, servicer_class(ctx), known.add))
    return found


@dataclass(frozen=True, slots=True)
class Tls:
    """PEM files of the server's certificate (chain) and private key."""

    cert_file: Path
    key_file: Path

    def credentials(self) -> grpc.ServerCredentials:
        pair = (self.key_file.read_bytes(), self.cert_file.read_bytes())
        return grpc.ssl_server_credentials([pair])


SETTLE = 0.5
"""Seconds between refusing new calls and stopping the gRPC server (see ``Drain``)."""


class Server:
    """One front door; see the module docstring."""

    def __init__(
        self,
        ctx: ApiContext,
        servicers: Sequence[Servicer],
        *,
        host: str = "127.0.0.1",
        port: int = 50051,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        tls: Tls | None = None,
        stream_limits: StreamLimits | None = None,
        keepalive: Keepalive | None = None,
        web: WebOptions | None = None,
    ) -> None:
        self.ctx = ctx
        self.web_options = web
        self.web: WebServer | None = None
        self._bridge: grpc.aio.Channel | None = None
        self.tls = tls
        self.servicers = tuple(servicers)
        self.host = host
        self.requested_port = port
        self.port = 0
        self.auth = Authenticator(ctx.pool, redis=ctx.redis, rate_limit=rate_limit)
        self.drain = Drain()
        self.streams = StreamGuard(stream_limits)
        self.auth.revocations.listeners.append(self.streams.end_credentials)
        self._revocations: asyncio.Task[None] | None = None
        self.keepalive = keepalive or Keepalive()
        self.health = health.aio.HealthServicer()
        self._server = grpc.aio.server(
            # innermost: requests are checked against their limits after authentication
            interceptors=[self.auth, self.drain, self.streams, Limits()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # gRPC's default on Linux, made explicit: several processes share one port and
                # the kernel spreads connections over them (usher serve --workers, core.workers).
                ("grpc.so_reuseport", 1),
                *self.keepalive.server_options(),
            ],
        )
        self._stopped = False

    @property
    def served(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.servicers)

    async def _set_all(self, status: int) -> None:
        for name in ("", *self.served):
            await self.health.set(name, status)

    async def start(self) -> int:
        """Bind, register everything and start serving; the bound port."""
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        for servicer in self.servicers:
            servicer.add(servicer.servicer, self._server)
        reflection.enable_server_reflection(
            (
                *USHER_SERVICES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        address = f"{self.host}:{self.requested_port}"
        if self.tls is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, self.tls.credentials())
        if not self.port:
            raise OSError(f"cannot listen on {self.host}:{self.requested_port}")
        local = f"unix-abstract:usher-front-door-{os.getpid()}-{id(self):x}"
        if self.web_options is not None and not self._server.add_insecure_port(local):
            raise OSError(f"cannot listen on {local}")
        await self._server.start()
        if self.web_options is not None:
            await self._start_web(local, self.web_options)
        self._revocations = asyncio.create_task(self._end_revoked_streams(), name="revocations")
        await self._set_all(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", host=self.host, port=self.port, services=list(self.served))
        return self.port

    async def _start_web(self, local: str, options: WebOptions) -> None:
        """Serve the API to browsers, relayed to this server at ``local``."""
        from core.api.connect_bridge import bridge_app
        from core.api.tracking import TrackingLinks
        from core.api.web import web_app

        self._bridge = grpc.aio.insecure_channel(
            local,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        # the generated modules registered every served service in the default pool
        pool = descriptor_pool.Default()
        services = [pool.FindServiceByName(name) for name in self.served]
        app = bridge_app(self._bridge, services, max_message_bytes=MAX_MESSAGE_BYTES)
        tracking = TrackingLinks(self.ctx.pool)
        self.web = WebServer(web_app(app, options.cors_origins, tracking), options)
        await self.web.start()

    async def _end_revoked_streams(self) -> None:
        """While streams are open, look for revocations even when no call arrives (calls look
        as they come), so that a revoked credential's streams end within the interval."""
        check = self.auth.revocations
        while True:
            await asyncio.sleep(check.interval)
            if self.streams.open_streams:
                await check.maybe_run()

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop gracefully (see the module docstring); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._revocations is not None:
            self._revocations.cancel()
        log.info("shutting down", grace=grace, open_streams=self.drain.open_streams)
        await self.health.enter_graceful_shutdown()
        self.drain.begin()
        # Calls already on the wire get handed to the application and refused UNAVAILABLE by
        # the drain, instead of being cancelled by the stop while still unmatched.
        await asyncio.sleep(min(SETTLE, grace))
        await self._server.stop(grace)
        if self.web is not None:  # its relayed streams ended with the gRPC server's
            await self.web.stop()
        if self._bridge is not None:
            await self._bridge.close()
        log.info("stopped")

    async def wait(self) -> None:
        await self._server.wait_for_termination()


async def serve(
    ctx: ApiContext,
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    servicers: Sequence[Servicer] | None = None,
    grace: float = DEFAULT_GRACE,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    tls: Tls | None = None,
    stream_limits: StreamLimits | None = None,
    keepalive: Keepalive | None = None,
    web: WebOptions | None = None,
    on_ready: Callable[[Server], None] | None = None,
) -> None:
    """Serve ``servicers`` (default: ``available_servicers(ctx)``) until SIGTERM or SIGINT, then
    stop gracefully and return (the process then exits 0)."""
    server = Server(
        ctx,
        available_servicers(ctx) if servicers is None else servicers,
        host=host,
        port=port,
        rate_limit=rate_limit,
        tls=tls,
        stream_limits=stream_limits,
        keepalive=keepalive,
        web=web,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await server.start()
        if on_ready is not None:
            on_ready(server)
        await stopping.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await server.stop(grace)
