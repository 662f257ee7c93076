"""RecordService.WatchConversationLists over real gRPC, PostgreSQL and Redis, through the SDK:
counts first, then conversations entering and leaving lists as the event log moves; a resume
after the last event id gets what it missed; an agent hears only of what they may read; pins
show on the pinner's own watch; a change of visibility resets the lists. After each story the
watched counts are what CountConversations reads from the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    GatewayClient,
    InvalidArgument,
    RecordClient,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2, record_service_pb2_grpc, tenant_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import record_service_pb2 as pb

from core.api.records_service import RecordServicer
from core.store import credentials
from tests.integration.api_kit import Running, running

T = "acme"
LONG = duration_pb2.Duration(seconds=3600)
WAITING = pb.CONVERSATION_LIST_WAITING
ACTIVE = pb.CONVERSATION_LIST_ACTIVE
MINE = pb.CONVERSATION_LIST_MINE
PINNED = pb.CONVERSATION_LIST_PINNED
TEAM = pb.CONVERSATION_LIST_TEAM
LEFT_MESSAGES = pb.CONVERSATION_LIST_LEFT_MESSAGES
ENTERED = pb.LIST_CHANGE_KIND_ENTERED
LEFT = pb.LIST_CHANGE_KIND_LEFT
COUNT_FIELDS: dict[int, str] = {
    WAITING: "waiting",
    ACTIVE: "active",
    MINE: "mine",
    PINNED: "pinned",
    TEAM: "team",
    LEFT_MESSAGES: "left_messages",
}


@dataclass
class Console:
    """A console's lists as a watch's messages leave them."""

    stream: AsyncIterator[pb.WatchConversationListsResponse]
    lists: dict[int, set[str]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    seen: list[pb.ListChange] = field(default_factory=list)
    """Every change received."""
    resets: int = 0
    event_id: int = 0

    async def next(self) -> pb.WatchConversationListsResponse:
        message = await asyncio.wait_for(anext(self.stream), 15)
        self.event_id = message.event_id
        if message.reset:
            self.resets += 1
            self.lists = {c.list: set() for c in message.counts}
        for change in message.changes:
            self.seen.append(change)
            name = change.conversation.conversation.name
            if change.kind == LEFT:
                self.lists.setdefault(change.list, set()).discard(name)
            else:
                self.lists.setdefault(change.list, set()).add(name)
        self.counts = {c.list: c.count for c in message.counts}
        return message

    async def until(self, predicate: object) -> None:
        """Read messages until ``predicate(self)`` holds."""
        while not predicate(self):  # type: ignore[operator]
            await self.next()

    def about(self, conversation: str) -> list[pb.ListChange]:
        return [c for c in self.seen if c.conversation.conversation.name == conversation]


async def _start(gateway: GatewayClient, who: str, queue: str) -> str:
    started = await gateway.start_conversation(
        gw.StartConversationRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id=who, name=who.title()),
            queue=queue,
            first_message=gw.CustomerMessage(text=f"hello from {who}"),
        )
    )
    return started.conversation.name


async def _status(agent: AgentClient, status: agent_pb2.AgentStatus.ValueType) -> None:
    await agent.set_status(agent_svc.SetStatusRequest(status=status))


@dataclass
class World:
    pool: asyncpg.Pool
    admin: AdminClient
    gateway: GatewayClient
    ann: AgentClient
    bob: AgentClient
    ann_records: RecordClient
    supervisor: RecordClient


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def world(api: Running) -> AsyncIterator[World]:
    async with AdminClient(api.target, await api.token(T, "admin")) as admin:
        await admin.create_department(admin_pb.CreateDepartmentRequest(department_id="sales"))
        for agent_id in ("ann", "bob"):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id,
                    agent=agent_pb2.Agent(
                        display_name=agent_id, capacity=3, departments=["departments/sales"]
                    ),
                )
            )
        for queue_id, agents in (("anns", ["agents/ann"]), ("bobs", ["agents/bob"])):
            await admin.create_queue(
                admin_pb.CreateQueueRequest(
                    queue_id=queue_id,
                    queue=queue_pb2.Queue(designated_agents=agents, offer_timeout=LONG),
                )
            )
        async with (
            GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
            AgentClient(api.target, await api.token(T, "agent", "ann")) as ann,
            AgentClient(api.target, await api.token(T, "agent", "bob")) as bob,
            RecordClient(api.target, await api.token(T, "agent", "ann")) as ann_records,
            RecordClient(api.target, await api.token(T, "supervisor")) as supervisor,
        ):
            yield World(api.pool, admin, gateway, ann, bob, ann_records, supervisor)


def _watch(client: RecordClient, *lists: pb.ConversationList.ValueType, after: int = 0) -> Console:
    request = pb.WatchConversationListsRequest(lists=list(lists), resume_after_event_id=after)
    return Console(aiter(client.watch_conversation_lists(request)))


async def _counts_match_the_store(client: RecordClient, console: Console) -> None:
    stored = await client.count_conversations(pb.CountConversationsRequest())
    assert console.counts == {k: getattr(stored, COUNT_FIELDS[k]) for k in console.counts}


async def test_a_conversation_enters_waiting_on_start_and_leaves_it_on_take(
    world: World,
) -> None:
    console = _watch(world.supervisor, WAITING, ACTIVE)
    first = await console.next()
    assert first.reset and first.event_id > 0
    assert console.counts == {WAITING: 0, ACTIVE: 0}
    x = await _start(world.gateway, "kim", "queues/bobs")
    await console.until(lambda c: x in c.lists[WAITING])
    assert console.counts == {WAITING: 1, ACTIVE: 0}
    entered = console.about(x)[-1]
    assert (entered.list, entered.kind) == (WAITING, ENTERED)
    assert entered.conversation.conversation.customer.external_id == "kim"
    assert entered.conversation.conversation.queue == "queues/bobs"
    await _status(world.bob, agent_pb2.AGENT_STATUS_ONLINE)
    await world.bob.take_conversation(agent_svc.TakeConversationRequest(conversation=x))
    await console.until(lambda c: x not in c.lists[WAITING])
    await console.until(lambda c: x in c.lists[ACTIVE])
    assert console.counts == {WAITING: 0, ACTIVE: 1}
    assert (WAITING, LEFT) in {(c.list, c.kind) for c in console.about(x)}
    assert console.about(x)[-1].conversation.conversation.owner == "agents/bob"
    await _counts_match_the_store(world.supervisor, console)


async def test_a_resume_after_the_last_event_id_replays_what_was_missed(world: World) -> None:
    x = await _start(world.gateway, "kim", "queues/bobs")
    stream = world.supervisor.watch_conversation_lists(
        pb.WatchConversationListsRequest(lists=[WAITING, ACTIVE])
    )
    console = Console(aiter(stream))
    await console.next()
    assert console.counts == {WAITING: 1, ACTIVE: 0}
    cursor = console.event_id
    await stream.aclose()
    # missed: bob takes x, y starts waiting
    await _status(world.bob, agent_pb2.AGENT_STATUS_ONLINE)
    await world.bob.take_conversation(agent_svc.TakeConversationRequest(conversation=x))
    y = await _start(world.gateway, "lee", "queues/anns")
    again = _watch(world.supervisor, WAITING, ACTIVE, after=cursor)
    first = await again.next()
    assert not first.reset
    assert first.event_id > cursor
    got = {(c.list, c.kind, c.conversation.conversation.name) for c in first.changes}
    assert got == {(WAITING, LEFT, x), (ACTIVE, ENTERED, x), (WAITING, ENTERED, y)}
    assert again.counts == {WAITING: 1, ACTIVE: 1}
    await _counts_match_the_store(world.supervisor, again)
    # and it goes on live from there
    z = await _start(world.gateway, "sam", "queues/anns")
    await again.until(lambda c: z in c.lists.get(WAITING, set()))
    assert again.counts[WAITING] == 2


async def test_an_agent_hears_only_of_conversations_they_may_read(world: World) -> None:
    console = _watch(world.ann_records, WAITING, MINE, ACTIVE, LEFT_MESSAGES)
    await console.next()
    await _status(world.bob, agent_pb2.AGENT_STATUS_ONLINE)
    hidden = await _start(world.gateway, "kim", "queues/bobs")  # offered to bob, not ann's queue
    await world.bob.take_conversation(agent_svc.TakeConversationRequest(conversation=hidden))
    await world.bob.end_conversation(agent_svc.EndConversationRequest(conversation=hidden))
    mine = await _start(world.gateway, "lee", "queues/anns")  # ann is away: it waits
    await console.until(lambda c: mine in c.lists[WAITING])
    assert console.about(hidden) == []
    assert console.counts[WAITING] == 1
    await _status(world.ann, agent_pb2.AGENT_STATUS_ONLINE)
    await world.ann.take_conversation(agent_svc.TakeConversationRequest(conversation=mine))
    await console.until(lambda c: mine in c.lists[MINE] and mine not in c.lists[WAITING])
    assert console.counts == {WAITING: 0, MINE: 1, ACTIVE: 1, LEFT_MESSAGES: 0}
    assert console.about(hidden) == []
    await _counts_match_the_store(world.ann_records, console)


async def test_a_pin_shows_on_the_pinners_own_watch(world: World) -> None:
    x = await _start(world.gateway, "kim", "queues/bobs")
    console = _watch(world.supervisor, PINNED, WAITING)
    await console.next()
    await world.supervisor.pin_conversation(pb.PinConversationRequest(conversation=x))
    await console.until(lambda c: x in c.lists[PINNED])
    assert console.counts == {PINNED: 1, WAITING: 1}
    await world.supervisor.unpin_conversation(pb.UnpinConversationRequest(conversation=x))
    await console.until(lambda c: x not in c.lists[PINNED])
    assert console.counts[PINNED] == 0
    await _counts_match_the_store(world.supervisor, console)


async def test_team_reads_reset_the_lists_and_show_the_team(world: World) -> None:
    console = _watch(world.ann_records, TEAM, ACTIVE)
    await console.next()
    assert console.resets == 1
    await world.admin.update_tenant_settings(
        admin_pb.UpdateTenantSettingsRequest(
            settings=tenant_pb2.TenantSettings(agents_see_team_conversations=True),
            update_mask=field_mask_pb2.FieldMask(paths=["agents_see_team_conversations"]),
        )
    )
    await console.until(lambda c: c.resets == 2)  # what ann may see changed: read again
    await _status(world.bob, agent_pb2.AGENT_STATUS_ONLINE)
    x = await _start(world.gateway, "kim", "queues/bobs")
    await world.bob.take_conversation(agent_svc.TakeConversationRequest(conversation=x))
    await console.until(lambda c: x in c.lists[TEAM])
    assert console.counts == {TEAM: 1, ACTIVE: 1}
    await _counts_match_the_store(world.ann_records, console)


async def test_bad_watches_are_refused(world: World) -> None:
    with pytest.raises(InvalidArgument):
        await _watch(world.supervisor).next()
    with pytest.raises(InvalidArgument):
        await _watch(world.supervisor, WAITING, WAITING).next()
    with pytest.raises(InvalidArgument):
        await _watch(world.supervisor, WAITING, after=10**12).next()


async def test_a_department_watch_keeps_its_departments_conversations(world: World) -> None:
    request = pb.WatchConversationListsRequest(
        lists=[WAITING, ACTIVE], departments=["departments/sales"]
    )
    console = Console(aiter(world.supervisor.watch_conversation_lists(request)))
    await console.next()
    elsewhere = await _start(world.gateway, "kim", "queues/anns")  # no department's queue
    await _status(world.bob, agent_pb2.AGENT_STATUS_ONLINE)
    owned = await _start(world.gateway, "lee", "queues/bobs")
    await world.bob.take_conversation(agent_svc.TakeConversationRequest(conversation=owned))
    await console.until(lambda c: owned in c.lists[ACTIVE])  # bob is in sales
    assert console.about(elsewhere) == []
    assert console.counts == {WAITING: 0, ACTIVE: 1}
    stored = await world.supervisor.count_conversations(
        pb.CountConversationsRequest(departments=["departments/sales"])
    )
    assert (stored.waiting, stored.active) == (0, 1)


def _records_servicer(api: Running) -> RecordServicer:
    found = [s.servicer for s in api.server.servicers if isinstance(s.servicer, RecordServicer)]
    assert len(found) == 1
    return found[0]


async def _until(check: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), 60)


async def _opening(call: grpc.aio.UnaryStreamCall) -> bool:  # type: ignore[type-arg]
    """Whether the call's first message is a watch's opening (a reset)."""
    first = await call.read()
    return isinstance(first, pb.WatchConversationListsResponse) and first.reset


async def test_a_watch_ends_with_its_call_and_with_its_credential(api: Running) -> None:
    token = await api.token(T, "supervisor")
    servicer = _records_servicer(api)
    feed = api.server.ctx.feeds.feed(T)
    metadata = (("authorization", f"Bearer {token}"),)
    request = pb.WatchConversationListsRequest(lists=[WAITING])
    async with grpc.aio.insecure_channel(api.target) as channel:
        stub = record_service_pb2_grpc.RecordServiceStub(channel)
        call = stub.WatchConversationLists(request, metadata=metadata)
        assert await _opening(call)
        await _until(lambda: feed.subscribers == 1 and api.server.streams.open_streams == 1)
        call.cancel()
        await _until(lambda: feed.subscribers == 0 and api.server.streams.open_streams == 0)
        assert not servicer.pin_signals.watching()
        again = stub.WatchConversationLists(request, metadata=metadata)
        assert await _opening(again)
        assert await credentials.revoke(api.pool, token.split("_")[1])
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while True:
                await again.read()
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await _until(lambda: feed.subscribers == 0 and api.server.streams.open_streams == 0)
        assert not servicer.pin_signals.watching()
