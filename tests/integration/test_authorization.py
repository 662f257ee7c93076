"""Who may see and change which conversation, over real gRPC with real credentials
(``core.api.policy``): each hole found from outside, by name, and the relations that open the
way. A refused read answers exactly as a missing conversation; a refused change stores nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    FailedPrecondition,
    GatewayClient,
    NotFound,
    PermissionDenied,
    UsherError,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2
from usher.v1 import agent_service_pb2 as pb
from usher.v1 import conversation_service_pb2 as gw

from tests.integration.api_kit import Running, running

T = "acme"
SECRET = "order #123 card 4111"


@dataclass
class World:
    pool: asyncpg.Pool
    admin: AdminClient
    gateway: GatewayClient
    ann: AgentClient
    bob: AgentClient
    supervisor: AgentClient
    """A SUPERVISOR credential on AgentService (reads only)."""
    admin_reader: AgentClient
    """An ADMIN credential on AgentService (reads only)."""
    owned: str
    """Bob's: offered to him alone and accepted; its transcript has ``SECRET``."""
    offered: str
    """Offered to bob alone, not answered yet."""


async def _offer_to(pool: asyncpg.Pool, conversation: str) -> str:
    """The live offer of a conversation (read from the store: the test has no stream open)."""
    conversation_id = conversation.removeprefix("conversations/")
    offer_id = await pool.fetchval(
        "SELECT offer_id FROM offers WHERE tenant_id = $1 AND conversation_id = $2"
        " AND outcome IS NULL",
        T,
        conversation_id,
    )
    assert offer_id is not None, f"no live offer for {conversation}"
    return f"offers/{offer_id}"


async def _start(gateway: GatewayClient, who: str, queue: str, text: str) -> str:
    started = await gateway.start_conversation(
        gw.StartConversationRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id=who),
            queue=queue,
            first_message=gw.CustomerMessage(text=text),
        )
    )
    return started.conversation.name


async def _online(agent: AgentClient) -> None:
    await agent.set_status(pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def world(api: Running) -> AsyncIterator[World]:
    async with AdminClient(api.target, await api.token(T, "admin")) as admin:
        for agent_id in ("ann", "bob"):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id, agent=agent_pb2.Agent(display_name=agent_id, capacity=3)
                )
            )
        long = duration_pb2.Duration(seconds=3600)
        await admin.create_queue(
            admin_pb.CreateQueueRequest(
                queue_id="bobs",
                queue=queue_pb2.Queue(designated_agents=["agents/bob"], offer_timeout=long),
            )
        )
        await admin.create_queue(
            admin_pb.CreateQueueRequest(queue_id="all", queue=queue_pb2.Queue(offer_timeout=long))
        )
        async with (
            GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
            AgentClient(api.target, await api.token(T, "agent", "ann")) as ann,
            AgentClient(api.target, await api.token(T, "agent", "bob")) as bob,
            AgentClient(api.target, await api.token(T, "supervisor")) as supervisor,
            AgentClient(api.target, await api.token(T, "admin")) as admin_reader,
        ):
            await _online(bob)
            owned = await _start(gateway, "kim", "queues/bobs", SECRET)
            await bob.accept_offer(pb.AcceptOfferRequest(offer=await _offer_to(api.pool, owned)))
            offered = await _start(gateway, "lee", "queues/bobs", "hello")
            await _offer_to(api.pool, offered)
            await _online(ann)
            yield World(
                api.pool, admin, gateway, ann, bob, supervisor, admin_reader, owned, offered
            )


async def refused(call: Awaitable[Any], kind: type[UsherError]) -> UsherError:
    with pytest.raises(kind) as failed:
        await call
    return failed.value


def _resource(error: UsherError) -> tuple[str, str]:
    info = error.detail(error_details_pb2.ResourceInfo)
    assert info is not None
    return info.resource_type, info.resource_name


async def _stored(pool: asyncpg.Pool, conversation: str) -> tuple[Any, ...]:
    """What a refused change must leave as it was: tags, notes, monitor events, messages."""
    conversation_id = conversation.removeprefix("conversations/")
    return (
        await pool.fetchval(
            "SELECT tags FROM conversations WHERE tenant_id = $1 AND conversation_id = $2",
            T,
            conversation_id,
        ),
        await pool.fetchval(
            "SELECT count(*) FROM conversation_notes WHERE tenant_id = $1 AND conversation_id = $2",
            T,
            conversation_id,
        ),
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE tenant_id = $1"
            " AND payload->>'conversation_id' = $2 AND type NOT IN ('TypingChanged')",
            T,
            conversation_id,
        ),
        await pool.fetchval(
            "SELECT count(*) FROM messages WHERE tenant_id = $1 AND conversation_id = $2",
            T,
            conversation_id,
        ),
    )


async def test_an_agent_cannot_read_a_conversation_offered_only_to_another(w: World) -> None:
    for read in (
        w.ann.get_conversation(pb.GetConversationRequest(name=w.offered)),
        w.ann.list_messages(pb.ListMessagesRequest(parent=w.offered)),
    ):
        error = await refused(read, NotFound)
        assert _resource(error) == ("usher.v1.Conversation", w.offered)
    # bob, offered it, reads it
    got = await w.bob.get_conversation(pb.GetConversationRequest(name=w.offered))
    assert got.conversation.name == w.offered


async def test_an_agent_cannot_read_another_agents_conversation_or_transcript(w: World) -> None:
    for read in (
        w.ann.get_conversation(pb.GetConversationRequest(name=w.owned)),
        w.ann.list_messages(pb.ListMessagesRequest(parent=w.owned)),
    ):
        error = await refused(read, NotFound)
        assert SECRET not in str(error)
    listed = await w.bob.list_messages(pb.ListMessagesRequest(parent=w.owned))
    assert SECRET in [m.text for m in listed.messages]


async def test_a_hidden_conversation_answers_exactly_as_a_missing_one(w: World) -> None:
    hidden = await refused(
        w.ann.get_conversation(pb.GetConversationRequest(name=w.owned)), NotFound
    )
    missing = "conversations/never-was"
    absent = await refused(
        w.ann.get_conversation(pb.GetConversationRequest(name=missing)), NotFound
    )
    assert _resource(hidden)[0] == _resource(absent)[0]
    assert hidden.reason == absent.reason
    assert str(hidden).replace(w.owned.split("/")[1], "X") == str(absent).replace("never-was", "X")


async def test_admins_and_supervisors_read_any_conversation_on_agent_service(w: World) -> None:
    for reader in (w.admin_reader, w.supervisor):
        got = await reader.get_conversation(pb.GetConversationRequest(name=w.owned))
        assert got.conversation.owner == "agents/bob"
        listed = await reader.list_messages(pb.ListMessagesRequest(parent=w.offered))
        assert [m.text for m in listed.messages if m.text == "hello"] == ["hello"]
        await refused(
            reader.send_message(pb.SendMessageRequest(conversation=w.owned, text="hi")),
            PermissionDenied,
        )


async def test_an_agent_cannot_monitor_with_silent_mode(w: World) -> None:
    silent = conversation_pb2.CONVERSATION_MODE_SILENT
    for conversation in (w.owned, w.offered):
        before = await _stored(w.pool, conversation)
        await refused(
            w.ann.set_conversation_mode(
                pb.SetConversationModeRequest(conversation=conversation, mode=silent)
            ),
            PermissionDenied,
        )
        assert await _stored(w.pool, conversation) == before
    # not even on a conversation of their own: monitoring is the supervisors'
    await refused(
        w.bob.set_conversation_mode(
            pb.SetConversationModeRequest(conversation=w.owned, mode=silent)
        ),
        PermissionDenied,
    )
    monitors = await w.pool.fetchval(
        "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'MonitorChanged'", T
    )
    assert monitors == 0


async def test_an_agent_cannot_note_or_tag_another_agents_conversation(w: World) -> None:
    before = await _stored(w.pool, w.owned)
    await refused(
        w.ann.add_note(pb.AddNoteRequest(conversation=w.owned, text="mine now")), PermissionDenied
    )
    await refused(
        w.ann.update_tags(pb.UpdateTagsRequest(conversation=w.owned, add_tags=["vip"])),
        PermissionDenied,
    )
    assert await _stored(w.pool, w.owned) == before
    # the owner may
    await w.bob.add_note(pb.AddNoteRequest(conversation=w.owned, text="called back"))
    tagged = await w.bob.update_tags(pb.UpdateTagsRequest(conversation=w.owned, add_tags=["vip"]))
    assert list(tagged.tags) == ["vip"]


async def test_an_agent_cannot_change_another_agents_conversation(w: World) -> None:
    mode = pb.SetConversationModeRequest
    attempts = {
        "send": w.ann.send_message(pb.SendMessageRequest(conversation=w.owned, text="hi")),
        "send to an offered one": w.ann.send_message(
            pb.SendMessageRequest(conversation=w.offered, text="hi")
        ),
        "end": w.ann.end_conversation(pb.EndConversationRequest(conversation=w.owned)),
        "wrap up": w.ann.finish_wrap_up(pb.FinishWrapUpRequest(conversation=w.owned)),
        "transfer": w.ann.request_transfer(
            pb.RequestTransferRequest(conversation=w.owned, queue="queues/all")
        ),
        "typing": w.ann.notify_typing(
            pb.AgentServiceNotifyTypingRequest(conversation=w.owned, active=True)
        ),
        "take": w.ann.take_conversation(pb.TakeConversationRequest(conversation=w.offered)),
        "auto": w.ann.set_conversation_mode(
            mode(conversation=w.offered, mode=conversation_pb2.CONVERSATION_MODE_AUTO)
        ),
        "live": w.ann.set_conversation_mode(
            mode(conversation=w.offered, mode=conversation_pb2.CONVERSATION_MODE_LIVE)
        ),
        "end mode": w.ann.set_conversation_mode(
            mode(conversation=w.offered, mode=conversation_pb2.CONVERSATION_MODE_END)
        ),
    }
    before = [await _stored(w.pool, c) for c in (w.owned, w.offered)]
    for what, attempt in attempts.items():
        with pytest.raises(PermissionDenied):
            await attempt
            pytest.fail(f"{what} was allowed")
    assert [await _stored(w.pool, c) for c in (w.owned, w.offered)] == before


async def test_the_owner_is_still_told_why_the_state_refuses(w: World) -> None:
    """Only strangers are answered PERMISSION_DENIED instead of the state's refusal."""
    await refused(
        w.bob.finish_wrap_up(pb.FinishWrapUpRequest(conversation=w.owned)), FailedPrecondition
    )


async def test_a_transfer_opens_reading_to_its_target_and_keeps_it_for_the_sender(
    w: World,
) -> None:
    await w.bob.request_transfer(
        pb.RequestTransferRequest(conversation=w.owned, agent="agents/ann")
    )
    got = await w.ann.get_conversation(pb.GetConversationRequest(name=w.owned))  # party to it
    assert got.conversation.owner == "agents/bob"
    transfer = await w.pool.fetchval(
        "SELECT transfer_id FROM transfers WHERE tenant_id = $1 AND outcome IS NULL", T
    )
    await w.ann.answer_transfer(
        pb.AnswerTransferRequest(transfer=f"transfers/{transfer}", accept=True)
    )
    await w.ann.send_message(pb.SendMessageRequest(conversation=w.owned, text="ann here"))
    listed = await w.bob.list_messages(pb.ListMessagesRequest(parent=w.owned))  # served it
    assert "ann here" in [m.text for m in listed.messages]
    await refused(
        w.bob.send_message(pb.SendMessageRequest(conversation=w.owned, text="still mine?")),
        PermissionDenied,
    )
    await w.bob.add_note(pb.AddNoteRequest(conversation=w.owned, text="handed to ann"))


async def test_an_agent_sees_what_waits_in_a_queue_it_serves_until_another_takes_it(
    w: World,
) -> None:
    await w.ann.set_status(pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_AWAY))
    waiting = await _start(w.gateway, "max", "queues/all", "anyone?")
    offer = await _offer_to(w.pool, waiting)  # to bob: ann is away
    got = await w.ann.get_conversation(pb.GetConversationRequest(name=waiting))
    assert got.conversation.state == conversation_pb2.CONVERSATION_STATE_OFFERED
    await w.bob.accept_offer(pb.AcceptOfferRequest(offer=offer))
    await refused(w.ann.get_conversation(pb.GetConversationRequest(name=waiting)), NotFound)
    # nor does a queue ann does not serve show her what waits there
    bobs = await _start(w.gateway, "ned", "queues/bobs", "for bob")
    await refused(w.ann.list_messages(pb.ListMessagesRequest(parent=bobs)), NotFound)


async def test_an_agent_acts_on_what_waits_in_a_queue_it_serves(w: World) -> None:
    waiting = await _start(w.gateway, "max", "queues/all", "anyone?")
    # offered to one of them; ann serves the queue either way
    await w.ann.set_conversation_mode(
        pb.SetConversationModeRequest(
            conversation=waiting, mode=conversation_pb2.CONVERSATION_MODE_END
        )
    )
    got = await w.admin_reader.get_conversation(pb.GetConversationRequest(name=waiting))
    assert got.conversation.state == conversation_pb2.CONVERSATION_STATE_CLOSED


@pytest.fixture
def w(world: World) -> World:
    return world
