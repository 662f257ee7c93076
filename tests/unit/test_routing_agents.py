"""Agents, statuses, modes, bots, monitoring, and the contract every command keeps."""

from __future__ import annotations

import pytest

from core.routing import (
    AlreadyExists,
    CapacityExceeded,
    Engine,
    FailedPrecondition,
    InvalidArgument,
    ManualClock,
    NotFound,
    RoutingError,
)
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.invariants import snapshot
from tests.unit.engine_kit import Kit, T, of_type

S = m.ConversationState
LUNCH = m.CustomStatus("lunch", m.AgentStatus.BREAK, auto_reply="Back at 2pm")


def test_a_custom_status_sends_its_auto_reply_to_customers() -> None:
    kit = Kit(m.TenantSettings(custom_statuses=(LUNCH,)))
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")
    kit.status("a", m.AgentStatus.BREAK, custom="lunch")

    result = kit.run(
        c.RecordMessage(
            message=m.MessageBody(text="hi"),
            tenant=T,
            conversation_id="c1",
            sender=m.Sender.CUSTOMER,
        )
    )

    (reply,) = of_type(result.events, ev.SystemMessageSent)
    assert (reply.kind, reply.text) == (m.SystemMessage.AGENT_AUTO_REPLY, "Back at 2pm")


def test_a_custom_status_must_match_its_base_status() -> None:
    kit = Kit(m.TenantSettings(custom_statuses=(LUNCH,)))
    kit.agent("a", online=False)
    with pytest.raises(InvalidArgument):
        kit.status("a", m.AgentStatus.AWAY, custom="lunch")
    with pytest.raises(NotFound):
        kit.status("a", m.AgentStatus.BREAK, custom="gym")


def test_an_agent_who_signs_in_pulls_waiting_conversations_up_to_capacity() -> None:
    kit = Kit()
    kit.queue()
    for n in range(3):
        kit.start(f"c{n}")
    kit.agent("a", capacity=2)

    assert [kit.state(f"c{n}") for n in range(3)] == [S.OFFERED, S.OFFERED, S.QUEUED]


def test_system_messages_use_the_tenant_text_in_the_customer_language() -> None:
    texts = {"zh": {m.SystemMessage.WELCOME: "您好！"}, "th": {m.SystemMessage.WELCOME: ""}}
    kit = Kit(m.TenantSettings(texts=texts))
    kit.queue()

    zh = kit.start("c1", language="zh")
    th = kit.start("c2", language="th")

    assert of_type(zh.events, ev.SystemMessageSent)[0].text == "您好！"
    assert not [e for e in of_type(th.events, ev.SystemMessageSent) if e.kind == "welcome"]


def test_a_bot_conversation_waits_for_a_request_before_routing() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1", with_bot=True)
    assert kit.state("c1") is S.BOT

    kit.run(c.RequestAgent(tenant=T, conversation_id="c1"))

    assert kit.offered_to("c1") == ("a",)


def test_mode_live_takes_over_from_the_bot() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1", with_bot=True)

    kit.run(c.SetMode(tenant=T, agent_id="a", conversation_id="c1", mode=m.Mode.LIVE))

    assert (kit.state("c1"), kit.conv("c1").owner) == (S.ACTIVE, "a")


def test_mode_auto_hands_the_conversation_back_to_the_bot_and_frees_the_agent() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")

    kit.run(c.SetMode(tenant=T, agent_id="a", conversation_id="c1", mode=m.Mode.AUTO))

    assert kit.state("c1") is S.BOT and kit.router.agents["a"].load == 0


def test_mode_silent_monitors_and_stops_the_bot() -> None:
    kit = Kit(m.TenantSettings(default_queue="q"))
    kit.queue()
    kit.agent("sup", online=False)
    kit.start("c1", with_bot=True)

    kit.run(c.SetMode(tenant=T, agent_id="sup", conversation_id="c1", mode=m.Mode.SILENT))

    assert kit.conv("c1").monitors == {"sup"}
    assert kit.state("c1") is S.QUEUED


def test_mode_end_closes_the_conversation_as_resolved() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")

    kit.run(c.SetMode(tenant=T, agent_id="a", conversation_id="c1", mode=m.Mode.END))

    conv = kit.conv("c1")
    assert (conv.state, conv.outcome) == (S.CLOSED, m.Outcome.RESOLVED)


def test_a_supervisor_monitors_silently_without_taking_capacity() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")

    kit.run(c.Monitor(tenant=T, supervisor_id="sup", conversation_id="c1"))

    assert kit.conv("c1").monitors == {"sup"} and kit.conv("c1").owner == "a"
    with pytest.raises(FailedPrecondition):
        kit.run(c.Monitor(tenant=T, supervisor_id="sup", conversation_id="c1"))


def test_a_closed_conversation_reopens_to_its_last_agent_when_sticky() -> None:
    kit = Kit()
    kit.queue(sticky_window=3600)
    kit.agent("a")
    kit.agent("b")
    kit.start("c1")
    kit.assign("c1")
    kit.end("c1")
    kit.clock.advance(60)

    kit.run(c.ReopenConversation(tenant=T, conversation_id="c1"))

    assert kit.offered_to("c1") == ("a",)


def test_an_outcome_and_times_are_recorded() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.clock.advance(5)
    kit.assign("c1")
    kit.clock.advance(7)
    kit.run(
        c.RecordMessage(
            message=m.MessageBody(text="hi"),
            tenant=T,
            conversation_id="c1",
            sender=m.Sender.AGENT,
            agent_id="a",
        )
    )
    kit.clock.advance(100)
    kit.run(c.EndConversation(tenant=T, agent_id="a", conversation_id="c1", outcome=m.Outcome.SPAM))

    conv = kit.conv("c1")
    assert conv.first_response_at - conv.first_queued_at == 12  # waiting time
    assert conv.ended_at - conv.assigned_at == 107  # service time
    assert conv.outcome is m.Outcome.SPAM


def test_tags_are_added_and_removed() -> None:
    kit = Kit()
    kit.queue()
    kit.start("c1", tags=frozenset({"vip"}))

    kit.run(
        c.TagConversation(
            tenant=T, conversation_id="c1", add=frozenset({"refund"}), remove=frozenset({"vip"})
        )
    )

    assert kit.conv("c1").tags == {"refund"}


# --- the command contract ----------------------------------------------------------------------


def busy_kit() -> Kit:
    kit = Kit(skills=["billing"])
    kit.queue(requirements=(m.SkillRequirement("billing", 2),))
    kit.agent("a", skills={"billing": 5})
    kit.start("c1")
    kit.assign("c1")
    kit.start("c2")
    return kit


BAD_COMMANDS: list[tuple[c.Command, type[RoutingError]]] = [
    (c.SetAgentStatus(tenant=T, agent_id="ghost", status=m.AgentStatus.ONLINE), NotFound),
    (c.ConfigureAgent(tenant=T, profile=m.AgentProfile("b", capacity=0)), InvalidArgument),
    (
        c.ConfigureAgent(tenant=T, profile=m.AgentProfile("b", skills={"billing": 11})),
        InvalidArgument,
    ),
    (c.ConfigureAgent(tenant=T, profile=m.AgentProfile("b", skills={"cooking": 3})), NotFound),
    (c.ConfigureAgent(tenant=T, profile=m.AgentProfile("a", capacity=0.5)), FailedPrecondition),
    (c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q2", offer_timeout=0)), InvalidArgument),
    (
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings("q2", overflow_queue="nowhere")),
        NotFound,
    ),
    (c.AcceptOffer(tenant=T, offer_id="o99", agent_id="a"), FailedPrecondition),
    (c.TakeConversation(tenant=T, agent_id="a", conversation_id="c2"), CapacityExceeded),
    (c.TakeConversation(tenant=T, agent_id="a", conversation_id="nope"), NotFound),
    (c.EndConversation(tenant=T, agent_id="a", conversation_id="c2"), FailedPrecondition),
    (c.FinishWrapUp(tenant=T, agent_id="a", conversation_id="c1"), FailedPrecondition),
    (
        c.RequestTransfer(
            tenant=T,
            agent_id="a",
            conversation_id="c1",
            target=m.TransferTarget.AGENT,
            target_id="a",
        ),
        InvalidArgument,
    ),
    (
        c.StartConversation(
            tenant=T, conversation_id="c1", channel="webchat", customer_id="x", queue_id="q"
        ),
        AlreadyExists,
    ),
    (
        c.StartConversation(
            tenant=T, conversation_id="c9", channel="webchat", customer_id="x", queue_id="zz"
        ),
        NotFound,
    ),
    (c.RequestAgent(tenant=T, conversation_id="c2"), FailedPrecondition),
    (c.ReopenConversation(tenant=T, conversation_id="c1"), FailedPrecondition),
    (c.CustomerLeft(tenant="other-tenant", conversation_id="c1"), NotFound),
]


@pytest.mark.parametrize(("command", "error"), BAD_COMMANDS, ids=lambda x: type(x).__name__)
def test_a_bad_command_raises_a_typed_error_and_changes_nothing(
    command: c.Command, error: type[RoutingError]
) -> None:
    kit = busy_kit()
    before = snapshot(kit.router)

    with pytest.raises(error) as raised:
        kit.run(command)

    assert raised.value.code == error.code
    assert snapshot(kit.router) == before


def test_the_same_commands_on_the_same_clock_give_the_same_events() -> None:
    def history() -> list[ev.Event]:
        kit = busy_kit()
        kit.advance(45)
        kit.end("c1")
        return kit.log

    assert history() == history()


def test_replaying_the_events_rebuilds_an_equal_engine() -> None:
    kit = busy_kit()
    kit.advance(45)
    rebuilt = Engine(ManualClock())

    rebuilt.replay(kit.log)

    assert snapshot(rebuilt.router(T)) == snapshot(kit.router)


def test_a_closed_conversation_leaves_memory_after_the_retention() -> None:
    kit = Kit(m.TenantSettings(closed_retention_seconds=600))
    kit.queue()
    kit.agent("a")
    kit.start("c1")
    kit.assign("c1")
    kit.end("c1")

    kit.advance(599)
    kit.run(c.ReopenConversation(tenant=T, conversation_id="c1"))  # reopening cancels it
    kit.end("c1", agent_id=kit.assign("c1"))
    kit.advance(600)

    assert "c1" not in kit.router.conversations
    assert kit.router.last_served == {}
    with pytest.raises(NotFound):
        kit.run(c.ReopenConversation(tenant=T, conversation_id="c1"))
