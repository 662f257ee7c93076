"""A conversation's notes with files, over real gRPC, PostgreSQL and Redis through the SDK:
the owner adds them (AgentService.AddNote), whoever may read the conversation lists them
(AgentService.ListNotes, paged), strangers see nothing, and a bad note stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from usher.client import AdminClient, AgentClient, GatewayClient, InvalidArgument, NotFound
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, conversation_pb2, queue_pb2
from usher.v1 import agent_service_pb2 as pb
from usher.v1 import conversation_service_pb2 as gw

from tests.integration.api_kit import running

T = "acme"
PHOTO = conversation_pb2.Attachment(
    name="receipt.jpg",
    content_type="image/jpeg",
    size=120_431,
    uri="https://files.example.com/acme/receipt.jpg",
)


@dataclass
class Desk:
    pool: asyncpg.Pool
    bob: AgentClient
    """Owns ``conversation``."""
    ann: AgentClient
    """Another agent, with no relation to it."""
    supervisor: AgentClient
    conversation: str


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    async with running(pool, redis_url, with_core=True) as api:
        async with AdminClient(api.target, await api.token(T, "admin")) as admin:
            for agent_id in ("ann", "bob"):
                await admin.create_agent(
                    admin_pb.CreateAgentRequest(
                        agent_id=agent_id, agent=agent_pb2.Agent(capacity=3)
                    )
                )
            await admin.create_queue(
                admin_pb.CreateQueueRequest(
                    queue_id="bobs",
                    queue=queue_pb2.Queue(
                        designated_agents=["agents/bob"],
                        offer_timeout=duration_pb2.Duration(seconds=3600),
                    ),
                )
            )
        async with (
            GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
            AgentClient(api.target, await api.token(T, "agent", "bob")) as bob,
            AgentClient(api.target, await api.token(T, "agent", "ann")) as ann,
            AgentClient(api.target, await api.token(T, "supervisor")) as supervisor,
        ):
            await bob.set_status(pb.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
            started = await gateway.start_conversation(
                gw.StartConversationRequest(
                    channel="webchat",
                    customer=conversation_pb2.CustomerIdentity(external_id="kim"),
                    queue="queues/bobs",
                    first_message=gw.CustomerMessage(text="my order is late"),
                )
            )
            name = started.conversation.name
            offer_id = await pool.fetchval(
                "SELECT offer_id FROM offers WHERE tenant_id = $1 AND conversation_id = $2",
                T,
                name.removeprefix("conversations/"),
            )
            await bob.accept_offer(pb.AcceptOfferRequest(offer=f"offers/{offer_id}"))
            yield Desk(pool, bob, ann, supervisor, name)


async def test_notes_keep_their_files_and_read_oldest_first(desk: Desk) -> None:
    first = await desk.bob.add_note(
        pb.AddNoteRequest(conversation=desk.conversation, text="refund agreed", attachments=[PHOTO])
    )
    assert first.note.author == "agents/bob" and list(first.note.attachments) == [PHOTO]
    await desk.bob.add_note(pb.AddNoteRequest(conversation=desk.conversation, text="called"))
    await desk.bob.add_note(pb.AddNoteRequest(conversation=desk.conversation, attachments=[PHOTO]))

    everything = await desk.bob.list_notes(pb.ListNotesRequest(parent=desk.conversation))
    assert [(n.text, len(n.attachments)) for n in everything.notes] == [
        ("refund agreed", 1),
        ("called", 0),
        ("", 1),
    ]
    assert everything.notes[0] == first.note
    paged: list[conversation_pb2.Note] = []
    token = ""
    while True:
        page = await desk.supervisor.list_notes(
            pb.ListNotesRequest(parent=desk.conversation, page_size=2, page_token=token)
        )
        paged += page.notes
        token = page.next_page_token
        if not token:
            break
    assert paged == list(everything.notes)


async def test_a_stranger_sees_no_notes(desk: Desk) -> None:
    await desk.bob.add_note(pb.AddNoteRequest(conversation=desk.conversation, text="private"))
    with pytest.raises(NotFound):
        await desk.ann.list_notes(pb.ListNotesRequest(parent=desk.conversation))
    with pytest.raises(NotFound):
        await desk.bob.list_notes(pb.ListNotesRequest(parent="conversations/nope"))


async def test_a_bad_note_is_refused_and_nothing_is_kept(desk: Desk) -> None:
    untyped = conversation_pb2.Attachment(name="a", uri="https://x/a", size=1)
    far = conversation_pb2.Attachment(
        name="b.mp4", content_type="video/mp4", uri="https://x/b", size=101 * 1024 * 1024
    )
    with pytest.raises(InvalidArgument) as bad:
        await desk.bob.add_note(
            pb.AddNoteRequest(conversation=desk.conversation, attachments=[untyped, far])
        )
    found = bad.value.detail(error_details_pb2.BadRequest)
    assert found is not None
    assert {v.field for v in found.field_violations} == {
        "attachments[0].content_type",
        "attachments[1].size",
    }
    with pytest.raises(InvalidArgument):
        await desk.bob.add_note(pb.AddNoteRequest(conversation=desk.conversation))
    assert await desk.pool.fetchval("SELECT count(*) FROM conversation_notes") == 0
