"""A real core (one in-process shard, the real gRPC server on loopback) with a tenant, a queue
and an online agent, plus a gateway of any provider served by uvicorn on a free port: what
every gateway test stands on. The agent answers through the SDK, as a console would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import uvicorn
from google.protobuf import field_mask_pb2
from usher.client import AdminClient, AgentClient
from usher.v1 import (
    admin_service_pb2,
    agent_pb2,
    agent_service_pb2,
    channel_pb2,
    conversation_pb2,
    queue_pb2,
    routing_pb2,
    tenant_pb2,
)

from gateways.common.app import build_app, running
from gateways.common.gateway import Gateway
from gateways.common.provider import Provider
from gateways.common.settings import GatewaySettings
from tests.integration.api_kit import Running
from tests.integration.api_kit import running as running_core

TENANT = "acme"
WAIT = 30.0  # a safety net against hangs, never an assertion about speed
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def eventually(probe: Callable[[], Any], *, timeout: float = WAIT) -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy; that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


@dataclass
class Core:
    """The core and its tenant: ``admin`` configured it; ``agent`` is Ann, online, capacity 3."""

    running: Running
    admin: AdminClient
    agent: AgentClient

    @property
    def target(self) -> str:
        return self.running.target

    async def next_offer(self, events: Any) -> routing_pb2.Offer:
        async def scan() -> Any:
            async for event in events:
                if event.WhichOneof("event") == "offer":
                    return event.offer
            raise AssertionError("the agent stream ended")

        return await asyncio.wait_for(scan(), WAIT)

    async def accept_next(self, events: Any) -> str:
        """Accept the next offer the agent gets; the conversation's name."""
        offer = await self.next_offer(events)
        await self.agent.accept_offer(agent_service_pb2.AcceptOfferRequest(offer=offer.name))
        return offer.conversation

    async def reply(self, conversation: str, text: str, **fields: Any) -> conversation_pb2.Message:
        sent = await self.agent.send_message(
            agent_service_pb2.SendMessageRequest(conversation=conversation, text=text, **fields)
        )
        return sent.message

    async def close(self, conversation: str) -> None:
        """End the conversation as its agent, finishing wrap-up if the tenant has one."""
        ended = await self.agent.end_conversation(
            agent_service_pb2.EndConversationRequest(conversation=conversation)
        )
        if ended.conversation.state == conversation_pb2.CONVERSATION_STATE_WRAP_UP:
            await self.agent.finish_wrap_up(
                agent_service_pb2.FinishWrapUpRequest(conversation=conversation)
            )

    async def transcript(self, conversation: str) -> list[conversation_pb2.Message]:
        listed = await self.agent.list_messages(
            agent_service_pb2.ListMessagesRequest(parent=conversation)
        )
        return list(listed.messages)

    async def conversation_count(self) -> int:
        count: int = await self.running.pool.fetchval(
            "SELECT count(*) FROM conversations WHERE tenant_id = $1", TENANT
        )
        return count

    async def message_count(self) -> int:
        count: int = await self.running.pool.fetchval(
            "SELECT count(*) FROM messages WHERE tenant_id = $1 AND sender = 'customer'", TENANT
        )
        return count


@contextlib.asynccontextmanager
async def core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with running_core(pool, redis_url, with_core=True) as r:
        admin = AdminClient(r.target, await r.token(TENANT, "admin"))
        await admin.create_skill(admin_service_pb2.CreateSkillRequest(skill_id="general"))
        await admin.create_queue(
            admin_service_pb2.CreateQueueRequest(
                queue_id="support", queue=queue_pb2.Queue(display_name="Support")
            )
        )
        await admin.update_tenant_settings(
            admin_service_pb2.UpdateTenantSettingsRequest(
                settings=tenant_pb2.TenantSettings(default_queue="queues/support"),
                update_mask=field_mask_pb2.FieldMask(paths=["default_queue"]),
            )
        )
        await admin.create_agent(
            admin_service_pb2.CreateAgentRequest(
                agent_id="ann", agent=agent_pb2.Agent(display_name="Ann", capacity=3)
            )
        )
        agent = AgentClient(r.target, await r.token(TENANT, "agent", "ann"))
        await agent.set_status(
            agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
        )
        try:
            yield Core(r, admin, agent)
        finally:
            await agent.close()
            await admin.close()


@dataclass
class RunningGateway:
    gateway: Gateway
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + path


@contextlib.asynccontextmanager
async def gateway(
    core: Core,
    provider: Provider,
    data_dir: Path,
    *,
    channel_id: str,
    channel: channel_pb2.Channel,
    restarted: bool = False,
    **settings: Any,
) -> AsyncIterator[RunningGateway]:
    """``provider``'s gateway for the tenant, with one channel created through the admin API
    (unless ``restarted``: the channel exists), served on a free port. ``settings`` override
    ``GatewaySettings``."""
    if not restarted:
        await core.admin.create_channel(
            admin_service_pb2.CreateChannelRequest(channel_id=channel_id, channel=channel)
        )
    port = free_port()
    config = GatewaySettings(
        core=core.target,
        api_keys=(await core.running.token(TENANT, "gateway"),),
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        **settings,
    )
    async with running(provider, config) as gw:
        server = uvicorn.Server(
            uvicorn.Config(
                build_app(gw, provider.routes(gw)),
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        task = asyncio.create_task(server.serve())
        await eventually(lambda: server.started)
        try:
            yield RunningGateway(gw, config.base_url)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, WAIT)
