"""Internal chat through the SDK over real gRPC, PostgreSQL and Redis: direct and group threads,
the stream (with its resume, presence changes, and the Redis fan-out between two front doors),
idempotent sends, members only, and colleagues with their status and load."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from usher.client import (
    AdminClient,
    AgentClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TeamChatClient,
)
from usher.client._stream import EventStream
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import team_chat_service_pb2 as pb

from core.api.team_chat_service import TeamChatServicer
from tests.integration.api_kit import Running, running

Stream = EventStream[pb.StreamTeamChatResponse, pb.StreamTeamChatResponse]


@dataclass
class Team:
    api: Running
    tenant: str
    chat: dict[str, TeamChatClient]
    agent: dict[str, AgentClient]


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as served:
        yield served


@pytest.fixture
async def team(api: Running) -> AsyncIterator[Team]:
    tenant = f"team{uuid.uuid4().hex[:8]}"
    chat: dict[str, TeamChatClient] = {}
    agent: dict[str, AgentClient] = {}
    async with AdminClient(api.target, await api.token(tenant, "admin")) as admin:
        await admin.create_department(
            admin_pb.CreateDepartmentRequest(
                department_id="sales", department=tenant_pb2.Department(display_name="Sales")
            )
        )
        for agent_id, name in (("ann", "Ann"), ("bob", "Bob"), ("cat", "Cat")):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id,
                    agent=agent_pb2.Agent(
                        display_name=name,
                        capacity=2,
                        departments=["departments/sales"] if agent_id != "cat" else [],
                    ),
                )
            )
            token = await api.token(tenant, "agent", agent_id)
            chat[agent_id] = TeamChatClient(api.target, token)
            agent[agent_id] = AgentClient.sharing(chat[agent_id])
    try:
        yield Team(api, tenant, chat, agent)
    finally:
        for client in chat.values():
            await client.close()


async def take(stream: Stream, count: int) -> list[pb.StreamTeamChatResponse]:
    """The next ``count`` items of ``stream`` (within 30 s)."""
    got: list[pb.StreamTeamChatResponse] = []

    async def gather() -> None:
        async for item in stream:
            got.append(item)
            if len(got) == count:
                return

    await asyncio.wait_for(gather(), 30)
    return got


async def joined(api: Running, tenant: str, streams: int = 1) -> None:
    """Wait until ``streams`` team chat streams of ``tenant`` are open on ``api``'s server."""
    (servicer,) = [
        s.servicer for s in api.server.servicers if isinstance(s.servicer, TeamChatServicer)
    ]
    for _ in range(300):
        if servicer.hub.inboxes(tenant) >= streams:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the stream did not open")


def texts(items: list[pb.StreamTeamChatResponse]) -> list[str]:
    return [i.message.text for i in items if i.HasField("message")]


async def send(client: TeamChatClient, thread: str, text: str) -> pb.TeamMessage:
    sent = await client.send_team_message(pb.SendTeamMessageRequest(thread=thread, text=text))
    return sent.message


async def direct(team: Team, a: str, b: str) -> pb.TeamThread:
    made = await team.chat[a].create_thread(
        pb.CreateThreadRequest(kind=pb.TEAM_THREAD_KIND_DIRECT, members=[f"agents/{b}"])
    )
    return made.thread


async def test_a_direct_thread_is_one_per_pair_and_reaches_both_streams(team: Team) -> None:
    bob_stream = team.chat["bob"].stream()
    bobs = asyncio.create_task(take(bob_stream, 3))
    await joined(team.api, team.tenant)  # a stream starts with new messages only

    thread = await direct(team, "ann", "bob")
    again = await direct(team, "bob", "ann")
    await send(team.chat["ann"], thread.name, "hi Bob")
    await send(team.chat["bob"], thread.name, "hi Ann")
    got = await bobs

    assert again.name == thread.name
    assert thread.kind == pb.TEAM_THREAD_KIND_DIRECT
    assert list(thread.members) == ["agents/ann", "agents/bob"]
    assert [i.message.kind for i in got] == [
        pb.TEAM_MESSAGE_KIND_THREAD_CREATED,
        pb.TEAM_MESSAGE_KIND_TEXT,
        pb.TEAM_MESSAGE_KIND_TEXT,
    ]
    assert got[0].thread.name == thread.name  # a new thread comes with its description
    assert texts(got)[1:] == ["hi Bob", "hi Ann"]
    assert [i.message.sender for i in got[1:]] == ["agents/ann", "agents/bob"]
    ids = [i.message.message_id for i in got]
    assert ids == sorted(ids)
    history = await team.chat["bob"].list_team_messages(
        pb.ListTeamMessagesRequest(thread=thread.name, page_size=2)
    )
    older = await team.chat["bob"].list_team_messages(
        pb.ListTeamMessagesRequest(thread=thread.name, page_token=history.next_page_token)
    )
    assert [m.text for m in history.messages] == ["hi Ann", "hi Bob"]  # newest first
    assert [m.kind for m in older.messages] == [pb.TEAM_MESSAGE_KIND_THREAD_CREATED]
    threads = await team.chat["ann"].list_threads(pb.ListThreadsRequest())
    assert [(t.name, t.last_message.text) for t in threads.threads] == [(thread.name, "hi Ann")]
    await bob_stream.aclose()


async def test_a_group_streams_to_its_members_and_resumes_after_the_last_id(team: Team) -> None:
    cat_stream = team.chat["cat"].stream()
    first = asyncio.create_task(take(cat_stream, 2))
    await joined(team.api, team.tenant)
    group = (
        await team.chat["ann"].create_thread(
            pb.CreateThreadRequest(
                kind=pb.TEAM_THREAD_KIND_GROUP,
                title="Night shift",
                members=["agents/bob", "agents/cat"],
            )
        )
    ).thread
    await send(team.chat["bob"], group.name, "one")
    before = await first
    await cat_stream.aclose()  # cat goes away...
    last = before[-1].message.message_id
    for text in ("two", "three"):
        await send(team.chat["ann"], group.name, text)
    other = await direct(team, "ann", "bob")  # ...and misses nothing of hers, nor sees others'
    await send(team.chat["ann"], other.name, "not for cat")

    resumed = team.chat["cat"].stream(resume_after_message_id=last)
    missed = await take(resumed, 2)
    await send(team.chat["bob"], group.name, "four")
    live = await take(resumed, 1)

    assert before[0].thread.title == "Night shift"
    assert list(before[0].thread.members) == ["agents/ann", "agents/bob", "agents/cat"]
    assert texts(before) == ["Night shift", "one"]
    assert texts(missed) == ["two", "three"]
    assert texts(live) == ["four"]
    assert resumed.last_event_id == live[0].message.message_id
    await resumed.aclose()


async def test_a_colleagues_status_change_arrives_on_the_stream(team: Team) -> None:
    stream = team.chat["ann"].stream()
    changes = asyncio.create_task(take(stream, 1))
    await joined(team.api, team.tenant)

    await team.agent["bob"].set_status(
        agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
    )
    (change,) = await changes

    assert change.HasField("presence")
    assert change.presence.agent == "agents/bob"
    assert change.presence.status == agent_pb2.AGENT_STATUS_ONLINE
    await stream.aclose()


async def test_colleagues_show_status_load_and_departments(team: Team) -> None:
    await team.agent["bob"].set_status(
        agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
    )

    everyone = await team.chat["ann"].list_colleagues(pb.ListColleaguesRequest())
    sales = await team.chat["ann"].list_colleagues(
        pb.ListColleaguesRequest(department="departments/sales", page_size=1)
    )
    rest = await team.chat["ann"].list_colleagues(
        pb.ListColleaguesRequest(department="departments/sales", page_token=sales.next_page_token)
    )

    shown = {c.agent: (c.display_name, c.status, c.capacity) for c in everyone.colleagues}
    assert shown == {
        "agents/ann": ("Ann", agent_pb2.AGENT_STATUS_OFFLINE, 2.0),
        "agents/bob": ("Bob", agent_pb2.AGENT_STATUS_ONLINE, 2.0),
        "agents/cat": ("Cat", agent_pb2.AGENT_STATUS_OFFLINE, 2.0),
    }
    assert [c.agent for c in [*sales.colleagues, *rest.colleagues]] == [
        "agents/ann",
        "agents/bob",
    ]
    assert list(sales.colleagues[0].departments) == ["departments/sales"]


async def test_a_repeated_send_is_answered_with_the_original(team: Team) -> None:
    thread = await direct(team, "ann", "bob")
    request = pb.SendTeamMessageRequest(thread=thread.name, text="once", request_id="r-1")

    first = await team.chat["ann"].send_team_message(request)
    again = await team.chat["ann"].send_team_message(request)

    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.message == first.message
    history = await team.chat["bob"].list_team_messages(
        pb.ListTeamMessagesRequest(thread=thread.name)
    )
    assert [m.text for m in history.messages].count("once") == 1


async def test_only_members_read_or_write_a_thread(team: Team) -> None:
    thread = await direct(team, "ann", "bob")

    with pytest.raises(NotFound):
        await send(team.chat["cat"], thread.name, "let me in")
    with pytest.raises(NotFound):
        await team.chat["cat"].list_team_messages(pb.ListTeamMessagesRequest(thread=thread.name))
    assert list((await team.chat["cat"].list_threads(pb.ListThreadsRequest())).threads) == []
    with pytest.raises(NotFound):  # no such agent
        await team.chat["ann"].create_thread(
            pb.CreateThreadRequest(kind=pb.TEAM_THREAD_KIND_DIRECT, members=["agents/zed"])
        )
    with pytest.raises(InvalidArgument):  # a group needs a title
        await team.chat["ann"].create_thread(
            pb.CreateThreadRequest(kind=pb.TEAM_THREAD_KIND_GROUP, members=["agents/bob"])
        )
    async with TeamChatClient(
        team.api.target, await team.api.token(team.tenant, "admin")
    ) as nobody:
        with pytest.raises(PermissionDenied) as caught:
            await nobody.list_threads(pb.ListThreadsRequest())
    assert caught.value.reason == "NO_AGENT"


async def test_a_message_sent_through_one_front_door_reaches_a_stream_on_another(
    team: Team, pool: asyncpg.Pool, redis_url: str
) -> None:
    thread = await direct(team, "ann", "bob")
    async with running(pool, redis_url, with_core=True) as other:
        bob_elsewhere = TeamChatClient(other.target, await other.token(team.tenant, "agent", "bob"))
        stream = bob_elsewhere.stream()
        got = asyncio.create_task(take(stream, 1))
        await joined(other, team.tenant)

        await send(team.chat["ann"], thread.name, "across front doors")

        assert texts(await got) == ["across front doors"]
        await stream.aclose()
        await bob_elsewhere.close()
