"""TLS when a certificate is configured: TLS clients are served, plaintext ones are not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.api.local import build_local_context
from core.api.server import Server, Tls
from core.store.connect import Connections
from tests.integration.serve_kit import UsherServe


@pytest.fixture
def certificate(tmp_path: Path) -> Tls:
    """A self-signed certificate for 127.0.0.1 (openssl, as an operator would make one)."""
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Tls(cert, key)


async def health(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(response.status)


async def test_a_configured_certificate_serves_tls_only(
    pool: asyncpg.Pool, redis_url: str, certificate: Tls
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    ctx, shard = build_local_context(Connections(pool, client, "test", "test"))
    server = Server(ctx, [], host="127.0.0.1", port=0, tls=certificate)
    await server.start()
    target = f"127.0.0.1:{server.port}"
    try:
        trusted = grpc.ssl_channel_credentials(certificate.cert_file.read_bytes())
        async with grpc.aio.secure_channel(target, trusted) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING

        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health(channel)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(grace=0.5)
        await shard.stop()
        await client.aclose()


async def test_usher_serve_with_tls_flags_serves_tls_only(
    database_url: str, redis_url: str, certificate: Tls, tmp_path: Path
) -> None:
    serve = UsherServe(
        [
            *("--local", "--http-port", "-1", "--grace", "1"),
            *("--database-url", database_url, "--redis-url", redis_url),
            *("--tls-cert", str(certificate.cert_file), "--tls-key", str(certificate.key_file)),
        ],
        log=tmp_path / "serve.log",
    )
    try:
        await serve.start()
        assert any(line.startswith("usher: TLS only") for line in serve.lines)
        trusted = grpc.ssl_channel_credentials(certificate.cert_file.read_bytes())
        async with grpc.aio.secure_channel(serve.target, trusted) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(serve.target) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await health(channel)
    finally:
        await serve.kill()
