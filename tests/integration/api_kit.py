"""A front door over real PostgreSQL and Redis for the API tests: one in-process shard, the
real ``Server`` (auth, drain, health, reflection) on 127.0.0.1 with a free port."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from usher.v1 import admin_service_pb2, admin_service_pb2_grpc

from core.api.admin import AdminServicer
from core.api.auth import RateLimit
from core.api.keepalive import Keepalive
from core.api.local import build_local_context
from core.api.server import Server, Servicer, available_servicers
from core.api.streams import StreamLimits
from core.api.web import WebOptions
from core.store import credentials
from core.store.connect import Connections

ADMIN = Servicer(
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    None,
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server,
)


@dataclass(frozen=True, slots=True)
class Running:
    server: Server
    pool: asyncpg.Pool

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def token(self, tenant: str, role: str, agent_id: str | None = None) -> str:
        """A fresh credential's token (the tenant is created if need be)."""
        await self.pool.execute(
            "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant
        )
        _, token = await credentials.create(self.pool, tenant, role, agent_id)
        return token


GENEROUS = RateLimit(limit=100_000, window=1.0)


@asynccontextmanager
async def running(
    pool: asyncpg.Pool,
    redis_url: str,
    *,
    extra: Sequence[Servicer] = (),
    rate_limit: RateLimit | None = GENEROUS,
    with_core: bool = False,
    stream_limits: StreamLimits | None = None,
    keepalive: Keepalive | None = None,
    web: WebOptions | None = None,
    public_url: str = "",
) -> AsyncIterator[Running]:
    """AdminService and ``extra``; with ``with_core`` every ``usher.v1`` service; with ``web``
    the API for browsers too (``server.web.url``), and QR codes' tracking links, whose base is
    ``public_url``."""
    client = aioredis.Redis.from_url(redis_url)
    connections = Connections(pool, client, "test", "test")
    ctx, shard = build_local_context(connections)
    ctx = dataclasses.replace(ctx, public_url=public_url)
    shard.start()
    admin = Servicer(ADMIN.name, AdminServicer(ctx), ADMIN.add)
    servicers = available_servicers(ctx) if with_core else [admin]
    server = Server(
        ctx,
        [*servicers, *extra],
        host="127.0.0.1",
        port=0,
        rate_limit=rate_limit,
        stream_limits=stream_limits,
        keepalive=keepalive,
        web=web,
    )
    await server.start()
    try:
        yield Running(server, pool)
    finally:
        await server.stop(grace=1.0)
        await shard.stop()
        await client.aclose()
