"""The front door over real gRPC: health, reflection, authentication, rate limits, and a
graceful stop that ends open streams with UNAVAILABLE."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from usher.client import AdminClient, ResourceExhausted, Unauthenticated
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import supervisor_service_pb2, supervisor_service_pb2_grpc

from core.api.auth import RateLimit, caller
from core.api.server import Servicer
from tests.integration.api_kit import Running, running


class Wallboard(supervisor_service_pb2_grpc.SupervisorServiceServicer):
    """A feed that sends one snapshot, then nothing, forever; it records who called."""

    def __init__(self) -> None:
        self.callers: list[str] = []
        self.started = asyncio.Event()

    async def StreamDashboard(
        self, request: Any, context: Any
    ) -> AsyncIterator[supervisor_service_pb2.StreamDashboardResponse]:
        self.callers.append(caller(context).tenant)
        yield supervisor_service_pb2.StreamDashboardResponse()
        self.started.set()
        await asyncio.Event().wait()


@pytest.fixture
def wallboard() -> Wallboard:
    return Wallboard()


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str, wallboard: Wallboard) -> AsyncIterator[Running]:
    supervisors = Servicer(
        supervisor_service_pb2.DESCRIPTOR.services_by_name["SupervisorService"].full_name,
        wallboard,
        supervisor_service_pb2_grpc.add_SupervisorServiceServicer_to_server,
    )
    async with running(pool, redis_url, extra=[supervisors]) as r:
        yield r


async def test_health_reports_serving(api: Running) -> None:
    async with grpc.aio.insecure_channel(api.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "usher.v1.AdminService"):
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(api: Running) -> None:
    async with grpc.aio.insecure_channel(api.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name async for answer in call for s in answer.list_services_response.service}
    assert {
        "usher.v1.ConversationService",
        "usher.v1.AgentService",
        "usher.v1.SupervisorService",
        "usher.v1.AdminService",
        "grpc.health.v1.Health",
    } <= names


async def test_calls_without_a_valid_token_are_unauthenticated(api: Running) -> None:
    async with grpc.aio.insecure_channel(api.target) as channel:
        stub_call = channel.unary_unary(
            "/usher.v1.AdminService/ListSkills",
            request_serializer=pb.ListSkillsRequest.SerializeToString,
            response_deserializer=pb.ListSkillsResponse.FromString,
        )
        for metadata in ((), (("authorization", "Basic abc"),)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub_call(pb.ListSkillsRequest(), metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
            assert status is not None and status.details  # an ErrorInfo rides along
    for token in ("garbage", "ush_nope_nope"):
        async with AdminClient(api.target, token) as client:
            with pytest.raises(Unauthenticated):
                await client.list_skills(pb.ListSkillsRequest())


async def test_the_tenant_rate_limit_answers_resource_exhausted(
    pool: asyncpg.Pool, redis_url: str
) -> None:
    async with running(pool, redis_url, rate_limit=RateLimit(limit=2, window=60.0)) as api:
        token = await api.token(f"t{uuid.uuid4().hex[:8]}", "admin")
        async with AdminClient(api.target, token) as client:
            await client.list_skills(pb.ListSkillsRequest())
            await client.list_skills(pb.ListSkillsRequest())
            with pytest.raises(ResourceExhausted) as limited:
                await client.create_skill(pb.CreateSkillRequest(skill_id="x"))
    assert limited.value.reason == "RATE_LIMITED"
    assert limited.value.retry_delay is not None


async def test_stopping_ends_open_streams_with_unavailable(
    api: Running, wallboard: Wallboard
) -> None:
    token = await api.token("acme", "supervisor")
    async with grpc.aio.insecure_channel(api.target) as channel:
        stub = supervisor_service_pb2_grpc.SupervisorServiceStub(channel)
        stream = stub.StreamDashboard(
            supervisor_service_pb2.StreamDashboardRequest(),
            metadata=(("authorization", f"Bearer {token}"),),
        )
        first = await stream.read()
        assert first is not grpc.aio.EOF
        await wallboard.started.wait()

        stopping = asyncio.create_task(api.server.stop(grace=30.0))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while await stream.read() is not grpc.aio.EOF:
                pass
        await stopping
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ended.value.details() == "server shutting down"
    assert wallboard.callers == ["acme"]
    assert api.server.drain.open_streams == 0


async def test_usher_serve_stops_cleanly_on_sigterm(database_url: str, redis_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "core.cli", "serve", "--local", "--port", "0"),
        *("--http-port", "-1", "--database-url", database_url, "--redis-url", redis_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        port = 0
        async for line in process.stdout:
            text = line.decode()
            if text.startswith("usher: gRPC listening on "):
                port = int(text.rsplit(":", 1)[1])
                break
        assert port, "usher serve never said where it listens"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest()
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
