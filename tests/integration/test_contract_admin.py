"""The contract kept, over real gRPC, PostgreSQL and Redis: what the protos document for skills,
departments, credentials, a conversation's region and language, and the transcript's paging is
what the server stores and answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from usher.client import AdminClient, AgentClient, GatewayClient, InvalidArgument, NotFound
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import agent_service_pb2 as agent_pb
from usher.v1 import conversation_pb2, credential_pb2, queue_pb2, tenant_pb2
from usher.v1 import conversation_service_pb2 as gw

from tests.integration.api_kit import Running, running

T = "acme"


@dataclass
class Clients:
    pool: asyncpg.Pool
    admin: AdminClient
    gateway: GatewayClient
    reader: AgentClient
    """A SUPERVISOR credential on AgentService: reads any conversation of the tenant."""


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def clients(api: Running) -> AsyncIterator[Clients]:
    async with (
        AdminClient(api.target, await api.token(T, "admin")) as admin,
        GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
        AgentClient(api.target, await api.token(T, "supervisor")) as reader,
    ):
        long = duration_pb2.Duration(seconds=3600)
        await admin.create_queue(
            pb.CreateQueueRequest(queue_id="support", queue=queue_pb2.Queue(offer_timeout=long))
        )
        yield Clients(api.pool, admin, gateway, reader)


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


# --- skills, departments, credentials ----------------------------------------------------------


async def test_update_skill_changes_its_display_name(clients: Clients) -> None:
    admin = clients.admin
    await admin.create_skill(pb.CreateSkillRequest(skill_id="billing"))
    updated = await admin.update_skill(
        pb.UpdateSkillRequest(
            skill=tenant_pb2.Skill(name="skills/billing", display_name="Billing & refunds"),
            update_mask=_mask("display_name"),
        )
    )
    assert updated.skill.display_name == "Billing & refunds"
    read = await admin.get_skill(pb.GetSkillRequest(name="skills/billing"))
    assert read.skill.display_name == "Billing & refunds"
    listed = await admin.list_skills(pb.ListSkillsRequest())
    assert [(s.name, s.display_name) for s in listed.skills] == [
        ("skills/billing", "Billing & refunds")
    ]
    # an empty mask writes every writable field: the display name, cleared back to the id
    cleared = await admin.update_skill(
        pb.UpdateSkillRequest(skill=tenant_pb2.Skill(name="skills/billing"))
    )
    assert cleared.skill.display_name == "billing"


async def test_update_skill_refuses_unwritable_fields_and_unknown_skills(clients: Clients) -> None:
    admin = clients.admin
    await admin.create_skill(
        pb.CreateSkillRequest(skill_id="billing", skill=tenant_pb2.Skill(display_name="Billing"))
    )
    with pytest.raises(InvalidArgument) as bad:
        await admin.update_skill(
            pb.UpdateSkillRequest(
                skill=tenant_pb2.Skill(name="skills/billing", display_name="x"),
                update_mask=_mask("create_time"),
            )
        )
    violations = bad.value.detail(error_details_pb2.BadRequest)
    assert violations is not None
    assert [v.field for v in violations.field_violations] == ["update_mask"]
    with pytest.raises(NotFound):
        await admin.update_skill(
            pb.UpdateSkillRequest(
                skill=tenant_pb2.Skill(name="skills/never", display_name="x"),
                update_mask=_mask("display_name"),
            )
        )
    kept = await admin.get_skill(pb.GetSkillRequest(name="skills/billing"))
    assert kept.skill.display_name == "Billing"
    assert not await clients.pool.fetchval("SELECT count(*) FROM skills WHERE skill = 'never'")


async def test_skill_display_name_and_create_time_are_stored(clients: Clients) -> None:
    admin = clients.admin
    created = await admin.create_skill(
        pb.CreateSkillRequest(skill_id="cantonese", skill=tenant_pb2.Skill(display_name="粵語"))
    )
    assert created.skill.display_name == "粵語"
    assert created.skill.HasField("create_time")
    read = await admin.get_skill(pb.GetSkillRequest(name="skills/cantonese"))
    assert read.skill == created.skill
    # without a display name, the id stands for one
    plain = await admin.create_skill(pb.CreateSkillRequest(skill_id="vip"))
    assert plain.skill.display_name == "vip"
    assert plain.skill.create_time.ToDatetime() >= created.skill.create_time.ToDatetime()
    # deleting and defining it again starts afresh (the projection owns the row)
    await admin.delete_skill(pb.DeleteSkillRequest(name="skills/cantonese"))
    again = await admin.create_skill(pb.CreateSkillRequest(skill_id="cantonese"))
    assert again.skill.display_name == "cantonese"


async def test_department_create_time_is_stored(clients: Clients) -> None:
    admin = clients.admin
    created = await admin.create_department(
        pb.CreateDepartmentRequest(
            department_id="sales", department=tenant_pb2.Department(display_name="Sales")
        )
    )
    assert created.department.HasField("create_time")
    updated = await admin.update_department(
        pb.UpdateDepartmentRequest(
            department=tenant_pb2.Department(name="departments/sales", display_name="Sales HK"),
            update_mask=_mask("display_name"),
        )
    )
    assert updated.department.display_name == "Sales HK"
    assert updated.department.create_time == created.department.create_time  # set once
    listed = await admin.list_departments(pb.ListDepartmentsRequest())
    assert [d.create_time for d in listed.departments] == [created.department.create_time]


async def test_credential_display_name_is_stored(clients: Clients) -> None:
    admin = clients.admin
    created = await admin.create_credential(
        pb.CreateCredentialRequest(
            credential=credential_pb2.Credential(
                role=credential_pb2.ROLE_GATEWAY, display_name="WhatsApp gateway, HK"
            )
        )
    )
    assert created.credential.display_name == "WhatsApp gateway, HK"
    listed = await admin.list_credentials(pb.ListCredentialsRequest())
    shown = {c.name: c.display_name for c in listed.credentials}
    assert shown[created.credential.name] == "WhatsApp gateway, HK"
    revoked = await admin.revoke_credential(
        pb.RevokeCredentialRequest(name=created.credential.name)
    )
    assert revoked.credential.display_name == "WhatsApp gateway, HK"


# --- a conversation's region and language ------------------------------------------------------


async def test_conversation_region_and_language_are_filled_in(clients: Clients) -> None:
    gateway, reader = clients.gateway, clients.reader
    started = await gateway.start_conversation(
        gw.StartConversationRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id="kim"),
            queue="queues/support",
            region="hk",
            language="zh-Hant-HK",
            first_message=gw.CustomerMessage(text="hi"),
        )
    )
    assert (started.conversation.region, started.conversation.language) == ("hk", "zh-Hant-HK")
    read = await reader.get_conversation(
        agent_pb.GetConversationRequest(name=started.conversation.name)
    )
    assert (read.conversation.region, read.conversation.language) == ("hk", "zh-Hant-HK")
    # a later command answers from its outcome, with the same values
    posted = await gateway.receive_customer_message(
        gw.ReceiveCustomerMessageRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id="kim"),
            message=gw.CustomerMessage(text="still there?", provider_message_id="m-2"),
        )
    )
    assert not posted.started
    assert (posted.conversation.region, posted.conversation.language) == ("hk", "zh-Hant-HK")


async def test_conversation_without_a_language_shows_the_tenants_default(
    clients: Clients,
) -> None:
    received = await clients.gateway.receive_customer_message(
        gw.ReceiveCustomerMessageRequest(
            channel="whatsapp",
            customer=conversation_pb2.CustomerIdentity(external_id="lee"),
            message=gw.CustomerMessage(text="hello", provider_message_id="wamid-1"),
            start=gw.ConversationOptions(queue="queues/support", region="sg"),
        )
    )
    assert received.started
    default = (await clients.admin.get_tenant_settings(pb.GetTenantSettingsRequest())).settings
    expected = ("sg", default.default_language)
    assert default.default_language
    assert (received.conversation.region, received.conversation.language) == expected
    read = await clients.reader.get_conversation(
        agent_pb.GetConversationRequest(name=received.conversation.name)
    )
    assert (read.conversation.region, read.conversation.language) == expected


# --- the transcript, keyset-paged --------------------------------------------------------------


def _sent(minutes_ago: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago))
    return out


async def _conversation_with(clients: Clients, texts: list[str]) -> str:
    """A conversation whose customer messages carry ``texts``, each sent (by the customer's
    clock) a minute before the one before it: their create times run backwards."""
    started = await clients.gateway.start_conversation(
        gw.StartConversationRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id="pat"),
            queue="queues/support",
            first_message=gw.CustomerMessage(text=texts[0], send_time=_sent(0)),
        )
    )
    name = started.conversation.name
    for n, text in enumerate(texts[1:], start=1):
        await clients.gateway.post_customer_message(
            gw.PostCustomerMessageRequest(conversation=name, text=text, send_time=_sent(n))
        )
    return name


async def test_list_messages_pages_a_long_transcript_by_keyset(clients: Clients) -> None:
    texts = [f"message {n}" for n in range(7)]
    name = await _conversation_with(clients, texts)
    paged: list[conversation_pb2.Message] = []
    token = ""
    pages = 0
    while True:
        page = await clients.reader.list_messages(
            agent_pb.ListMessagesRequest(parent=name, page_size=3, page_token=token)
        )
        pages += 1
        assert len(page.messages) == 3 or not page.next_page_token
        paged += page.messages
        if pages == 1:  # recorded between pages: shown later, and nothing repeats
            await clients.gateway.post_customer_message(
                gw.PostCustomerMessageRequest(conversation=name, text="late")
            )
        token = page.next_page_token
        if not token:
            break
    customer = conversation_pb2.SENDER_CUSTOMER
    assert [m.text for m in paged if m.sender == customer] == [*texts, "late"]
    ids = [int(m.name.rsplit("/", 1)[1]) for m in paged]
    assert ids == sorted(set(ids))  # in the order recorded, though sent times run backwards
    sent = [m.create_time.ToDatetime() for m in paged if m.text in texts]
    assert sent == sorted(sent, reverse=True)
    assert pages == -(-len(paged) // 3) >= 3
    whole = await clients.reader.list_messages(
        agent_pb.ListMessagesRequest(parent=name, page_size=500)
    )
    assert list(whole.messages) == paged and whole.next_page_token == ""
    # a page that ends exactly at the transcript's end says it is the last
    exact = await clients.reader.list_messages(
        agent_pb.ListMessagesRequest(parent=name, page_size=len(paged))
    )
    assert len(exact.messages) == len(paged) and exact.next_page_token == ""


@pytest.mark.parametrize("token", ["abc", "-1", "²", "1" * 19, "3.5"])
async def test_list_messages_bad_page_token_is_invalid_argument(
    clients: Clients, token: str
) -> None:
    name = await _conversation_with(clients, ["hi"])
    with pytest.raises(InvalidArgument) as bad:
        await clients.reader.list_messages(
            agent_pb.ListMessagesRequest(parent=name, page_token=token)
        )
    violations = bad.value.detail(error_details_pb2.BadRequest)
    assert violations is not None
    assert [v.field for v in violations.field_violations] == ["page_token"]
    assert token not in str(bad.value)
