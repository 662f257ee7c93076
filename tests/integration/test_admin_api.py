"""AdminService over real gRPC, PostgreSQL and Redis: create and read back, refusals change
nothing, tenants are isolated, roles are enforced."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AlreadyExists,
    FailedPrecondition,
    GatewayClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import (
    agent_pb2,
    channel_pb2,
    conversation_service_pb2,
    credential_pb2,
    queue_pb2,
    tenant_pb2,
)

from tests.integration.api_kit import Running, running


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def admin(api: Running) -> AsyncIterator[AdminClient]:
    async with AdminClient(api.target, await api.token("acme", "admin")) as client:
        yield client


def agent(display: str, **skills: int) -> agent_pb2.Agent:
    return agent_pb2.Agent(
        display_name=display,
        capacity=2,
        skills=[agent_pb2.SkillLevel(skill=f"skills/{s}", level=n) for s, n in skills.items()],
    )


async def seed(admin: AdminClient) -> None:
    for skill in ("billing", "cantonese"):
        await admin.create_skill(pb.CreateSkillRequest(skill_id=skill))
    await admin.create_queue(
        pb.CreateQueueRequest(
            queue_id="support",
            queue=queue_pb2.Queue(
                display_name="Support",
                requirements=[queue_pb2.SkillRequirement(skill="skills/billing", min_level=2)],
                strategy=queue_pb2.STRATEGY_LEAST_BUSY,
                offer_timeout=duration_pb2.Duration(seconds=20),
                business_hours=queue_pb2.BusinessHours(
                    time_zone="Asia/Hong_Kong",
                    weekly=[
                        queue_pb2.DayHours(
                            day=queue_pb2.DAY_OF_WEEK_MONDAY,
                            ranges=[queue_pb2.TimeRange(start="09:00", end="18:00")],
                        )
                    ],
                    holidays=["2026-12-25"],
                ),
            ),
        )
    )
    await admin.create_agent(pb.CreateAgentRequest(agent_id="ann", agent=agent("Ann", billing=5)))
    await admin.create_agent(
        pb.CreateAgentRequest(agent_id="bob", agent=agent("Bob", billing=3, cantonese=7))
    )


async def test_admin_creates_and_reads_back(admin: AdminClient) -> None:
    await seed(admin)

    skills = await admin.list_skills(pb.ListSkillsRequest())
    assert [s.name for s in skills.skills] == ["skills/billing", "skills/cantonese"]
    queue = (await admin.get_queue(pb.GetQueueRequest(name="queues/support"))).queue
    assert queue.display_name == "Support"
    assert queue.strategy == queue_pb2.STRATEGY_LEAST_BUSY
    assert queue.offer_timeout.seconds == 20
    assert [(r.skill, r.min_level) for r in queue.requirements] == [("skills/billing", 2)]
    assert queue.business_hours.time_zone == "Asia/Hong_Kong"
    assert queue.business_hours.weekly[0].ranges[0].end == "18:00"
    assert list(queue.business_hours.holidays) == ["2026-12-25"]
    agents = (await admin.list_agents(pb.ListAgentsRequest(page_size=1))).agents
    assert [a.name for a in agents] == ["agents/ann"]
    bob = (await admin.get_agent(pb.GetAgentRequest(name="agents/bob"))).agent
    assert {(s.skill, s.level) for s in bob.skills} == {
        ("skills/billing", 3),
        ("skills/cantonese", 7),
    }
    assert bob.status == agent_pb2.AGENT_STATUS_OFFLINE and bob.capacity == 2


async def test_paging_walks_every_agent_once(admin: AdminClient) -> None:
    await seed(admin)
    first = await admin.list_agents(pb.ListAgentsRequest(page_size=1))
    second = await admin.list_agents(
        pb.ListAgentsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [a.name for a in (*first.agents, *second.agents)] == ["agents/ann", "agents/bob"]
    assert second.next_page_token == ""


async def test_updates_write_only_the_masked_fields(admin: AdminClient) -> None:
    await seed(admin)
    updated = await admin.update_agent(
        pb.UpdateAgentRequest(
            agent=agent_pb2.Agent(name="agents/ann", display_name="Ann Lee", capacity=99),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert updated.agent.display_name == "Ann Lee" and updated.agent.capacity == 2
    settings = await admin.update_tenant_settings(
        pb.UpdateTenantSettingsRequest(
            settings=tenant_pb2.TenantSettings(
                default_queue="queues/support", misses_before_away=5
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["default_queue"]),
        )
    )
    assert settings.settings.default_queue == "queues/support"
    read = (await admin.get_tenant_settings(pb.GetTenantSettingsRequest())).settings
    assert read.default_queue == "queues/support" and read.misses_before_away == 3


async def test_bad_requests_are_invalid_and_change_nothing(
    admin: AdminClient, pool: asyncpg.Pool
) -> None:
    await seed(admin)
    before = await pool.fetch("SELECT agent_id, profile::text FROM agents ORDER BY agent_id")

    with pytest.raises(InvalidArgument) as bad_id:
        await admin.create_agent(pb.CreateAgentRequest(agent_id="no spaces", agent=agent("X")))
    violation = bad_id.value.detail(error_details_pb2.BadRequest)
    assert violation is not None and violation.field_violations[0].field == "agent_id"
    with pytest.raises(InvalidArgument):
        await admin.create_agent(
            pb.CreateAgentRequest(agent_id="cat", agent=agent_pb2.Agent(capacity=0))
        )
    with pytest.raises(InvalidArgument):
        await admin.create_agent(
            pb.CreateAgentRequest(agent_id="dan", agent=agent("D", billing=11))
        )
    with pytest.raises(InvalidArgument):
        await admin.update_agent(
            pb.UpdateAgentRequest(
                agent=agent_pb2.Agent(name="agents/ann", capacity=-1),
                update_mask=field_mask_pb2.FieldMask(paths=["capacity"]),
            )
        )
    with pytest.raises(InvalidArgument):
        await admin.update_agent(
            pb.UpdateAgentRequest(
                agent=agent_pb2.Agent(name="agents/ann"),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            )
        )
    with pytest.raises(InvalidArgument):
        await admin.list_agents(pb.ListAgentsRequest(page_size=501))
    with pytest.raises(InvalidArgument):
        await admin.create_queue(
            pb.CreateQueueRequest(
                queue_id="late",
                queue=queue_pb2.Queue(
                    business_hours=queue_pb2.BusinessHours(time_zone="Mars/Olympus")
                ),
            )
        )
    with pytest.raises(NotFound):
        await admin.create_agent(pb.CreateAgentRequest(agent_id="eve", agent=agent("E", vip=2)))
    with pytest.raises(AlreadyExists):
        await admin.create_agent(pb.CreateAgentRequest(agent_id="ann", agent=agent("A")))

    after = await pool.fetch("SELECT agent_id, profile::text FROM agents ORDER BY agent_id")
    assert after == before
    assert await pool.fetchval("SELECT count(*) FROM queues") == 1


async def test_deletes_refuse_what_is_in_use_then_remove(admin: AdminClient) -> None:
    await seed(admin)
    await admin.create_department(
        pb.CreateDepartmentRequest(department_id="sales", department=tenant_pb2.Department())
    )
    with pytest.raises(FailedPrecondition, match="in use") as in_use:
        await admin.delete_skill(pb.DeleteSkillRequest(name="skills/billing"))
    info = in_use.value.detail(error_details_pb2.ErrorInfo)
    assert info is not None and info.metadata["agents"] == "ann,bob"
    assert info.metadata["queues"] == "support"
    await admin.delete_agent(pb.DeleteAgentRequest(name="agents/bob"))
    with pytest.raises(NotFound):
        await admin.get_agent(pb.GetAgentRequest(name="agents/bob"))

    await admin.delete_skill(pb.DeleteSkillRequest(name="skills/cantonese"))  # bob is gone
    await admin.delete_department(pb.DeleteDepartmentRequest(name="departments/sales"))
    await admin.delete_queue(pb.DeleteQueueRequest(name="queues/support"))
    for missing in (
        admin.get_skill(pb.GetSkillRequest(name="skills/cantonese")),
        admin.get_department(pb.GetDepartmentRequest(name="departments/sales")),
        admin.get_queue(pb.GetQueueRequest(name="queues/support")),
    ):
        with pytest.raises(NotFound):
            await missing
    await admin.delete_agent(pb.DeleteAgentRequest(name="agents/ann"))
    await admin.delete_skill(pb.DeleteSkillRequest(name="skills/billing"))
    assert not (await admin.list_skills(pb.ListSkillsRequest())).skills


async def test_another_tenants_agent_is_not_found(api: Running, admin: AdminClient) -> None:
    await seed(admin)
    async with AdminClient(api.target, await api.token("globex", "admin")) as other:
        with pytest.raises(NotFound):
            await other.get_agent(pb.GetAgentRequest(name="agents/ann"))
        assert list((await other.list_agents(pb.ListAgentsRequest())).agents) == []


async def test_roles_are_enforced(api: Running, admin: AdminClient) -> None:
    await seed(admin)
    async with AdminClient(api.target, await api.token("acme", "supervisor")) as supervisor:
        assert (await supervisor.get_agent(pb.GetAgentRequest(name="agents/ann"))).agent.name
        with pytest.raises(PermissionDenied) as denied:
            await supervisor.create_skill(pb.CreateSkillRequest(skill_id="vip"))
        assert denied.value.reason == "ROLE_NOT_ALLOWED"
    async with AdminClient(api.target, await api.token("acme", "gateway")) as gateway:
        with pytest.raises(PermissionDenied):
            await gateway.list_agents(pb.ListAgentsRequest())


async def test_credentials_are_shown_once_and_revocable(api: Running, admin: AdminClient) -> None:
    await seed(admin)
    created = await admin.create_credential(
        pb.CreateCredentialRequest(
            credential=credential_pb2.Credential(role=credential_pb2.ROLE_ADMIN)
        )
    )
    assert created.token.startswith("ush_")
    listed = await admin.list_credentials(pb.ListCredentialsRequest())
    assert created.credential.name in [c.name for c in listed.credentials]
    with pytest.raises(InvalidArgument):
        await admin.create_credential(
            pb.CreateCredentialRequest(
                credential=credential_pb2.Credential(role=credential_pb2.ROLE_AGENT)
            )
        )
    with pytest.raises(NotFound):
        await admin.create_credential(
            pb.CreateCredentialRequest(
                credential=credential_pb2.Credential(
                    role=credential_pb2.ROLE_AGENT, agent="agents/nobody"
                )
            )
        )
    revoked = await admin.revoke_credential(
        pb.RevokeCredentialRequest(name=created.credential.name)
    )
    assert revoked.credential.HasField("revoke_time")
    async with AdminClient(api.target, created.token) as gone:
        with pytest.raises(Unauthenticated):
            await gone.list_skills(pb.ListSkillsRequest())


WHATSAPP = channel_pb2.Channel(
    type=channel_pb2.CHANNEL_TYPE_WHATSAPP,
    display_name="Sales",
    settings={"phone_number_id": "1065", "api_version": "v21.0"},
    secrets={"access_token": "EAAG-secret", "app_secret": "shh", "verify_token": "v"},
)


async def test_channels_keep_their_secrets_from_admins_and_give_them_to_gateways(
    api: Running, admin: AdminClient
) -> None:
    created = await admin.create_channel(
        pb.CreateChannelRequest(channel_id="wa-sales", channel=WHATSAPP)
    )
    assert created.channel.name == "channels/wa-sales"
    assert dict(created.channel.secrets) == dict.fromkeys(WHATSAPP.secrets, "")
    with pytest.raises(AlreadyExists):
        await admin.create_channel(pb.CreateChannelRequest(channel_id="wa-sales", channel=WHATSAPP))

    patch = channel_pb2.Channel(name="channels/wa-sales", secrets={"access_token": "rotated"})
    await admin.update_channel(
        pb.UpdateChannelRequest(
            channel=patch, update_mask=field_mask_pb2.FieldMask(paths=["secrets"])
        )
    )
    read = await admin.get_channel(pb.GetChannelRequest(name="channels/wa-sales"))
    assert read.channel.display_name == "Sales" and read.channel.settings["api_version"] == "v21.0"
    assert dict(read.channel.secrets) == {"access_token": ""}

    async with GatewayClient(api.target, await api.token("acme", "gateway")) as gateway:
        served = await gateway.fetch_gateway_channels(
            conversation_service_pb2.FetchGatewayChannelsRequest(
                type=channel_pb2.CHANNEL_TYPE_WHATSAPP
            )
        )
        assert served.webhook_namespace == "acme"
        assert [(c.name, dict(c.secrets)) for c in served.channels] == [
            ("channels/wa-sales", {"access_token": "rotated"})
        ]
        with pytest.raises(InvalidArgument):
            await gateway.fetch_gateway_channels(
                conversation_service_pb2.FetchGatewayChannelsRequest()
            )
    async with GatewayClient(api.target, await api.token("other", "gateway")) as stranger:
        theirs = await stranger.fetch_gateway_channels(
            conversation_service_pb2.FetchGatewayChannelsRequest(
                type=channel_pb2.CHANNEL_TYPE_WHATSAPP
            )
        )
        assert theirs.webhook_namespace == "other" and not theirs.channels

    await admin.delete_channel(pb.DeleteChannelRequest(name="channels/wa-sales"))
    with pytest.raises(NotFound):
        await admin.get_channel(pb.GetChannelRequest(name="channels/wa-sales"))


async def test_bad_channels_are_refused_and_change_nothing(admin: AdminClient) -> None:
    bad = [
        pb.CreateChannelRequest(channel_id="no type", channel=WHATSAPP),
        pb.CreateChannelRequest(channel_id="untyped", channel=channel_pb2.Channel()),
        pb.CreateChannelRequest(
            channel_id="huge",
            channel=channel_pb2.Channel(
                type=channel_pb2.CHANNEL_TYPE_SMS, settings={"k": "x" * 10_000}
            ),
        ),
    ]
    for request in bad:
        with pytest.raises(InvalidArgument):
            await admin.create_channel(request)
    await admin.create_channel(pb.CreateChannelRequest(channel_id="sms", channel=WHATSAPP))
    with pytest.raises(InvalidArgument):
        await admin.update_channel(
            pb.UpdateChannelRequest(
                channel=channel_pb2.Channel(
                    name="channels/sms", type=channel_pb2.CHANNEL_TYPE_LINE
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            )
        )
    listed = await admin.list_channels(pb.ListChannelsRequest())
    assert [(c.name, c.type) for c in listed.channels] == [
        ("channels/sms", channel_pb2.CHANNEL_TYPE_WHATSAPP)
    ]
