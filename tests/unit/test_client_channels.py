"""The SDK's ``channels`` option against a real ``grpc.aio`` server on loopback: unary calls go
round robin over that many connections (told apart by the peer address the server sees)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from usher.client import AdminClient
from usher.v1 import admin_service_pb2 as pb


class Skills:
    """Answers ListSkills with nothing, noting the peer (client address and port) of each call."""

    def __init__(self) -> None:
        self.peers: list[str] = []

    async def list_skills(
        self, request: pb.ListSkillsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListSkillsResponse:
        self.peers.append(context.peer())
        return pb.ListSkillsResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(
            self.list_skills,
            request_deserializer=pb.ListSkillsRequest.FromString,
            response_serializer=pb.ListSkillsResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler("usher.v1.AdminService", {"ListSkills": method})


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Skills]]:
    server = grpc.aio.server()
    skills = Skills()
    server.add_generic_rpc_handlers((skills.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", skills
    finally:
        await server.stop(None)


async def test_unary_calls_round_robin_over_the_channels(served: tuple[str, Skills]) -> None:
    target, skills = served
    async with AdminClient(target, "token", channels=3) as client:
        for _ in range(6):
            await client.list_skills(pb.ListSkillsRequest())
    assert len(set(skills.peers)) == 3
    assert skills.peers[:3] == skills.peers[3:]  # in turn


async def test_one_channel_is_one_connection_as_before(served: tuple[str, Skills]) -> None:
    target, skills = served
    async with AdminClient(target, "token") as client:
        assert isinstance(client.channel, grpc.aio.Channel)
        for _ in range(3):
            await client.list_skills(pb.ListSkillsRequest())
    assert len(set(skills.peers)) == 1


def test_channels_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdminClient("127.0.0.1:1", "token", channels=0)
