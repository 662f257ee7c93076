"""The contract the protos promise about agents' statuses and the FIRST LINE routing options:
signing out while holding conversations, custom statuses named alone, skills relaxed when no
skilled agent is online, and the customer told when the agent is idle."""

from __future__ import annotations

from typing import Any

import pytest

from core.routing import Engine, FailedPrecondition, InvalidArgument, ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.invariants import snapshot
from core.store import codec
from tests.unit.engine_kit import Kit, T, of_type

S = m.ConversationState
REQUEUE = m.TenantSettings(sign_out_with_conversations=m.SignOutPolicy.REQUEUE)


def owned_by(kit: Kit, agent_id: str, *conversation_ids: str) -> None:
    """Start the conversations and have ``agent_id`` accept each."""
    for conversation_id in conversation_ids:
        kit.start(conversation_id)
        assert kit.offered_to(conversation_id) == (agent_id,)
        kit.assign(conversation_id)


# --- signing out -------------------------------------------------------------------------------


def test_signing_out_while_holding_conversations_is_refused() -> None:
    kit = Kit()
    kit.queue()
    kit.agent("a", capacity=2)
    owned_by(kit, "a", "c1", "c2")
    before = snapshot(kit.router)

    with pytest.raises(FailedPrecondition) as refused:
        kit.status("a", m.AgentStatus.OFFLINE)

    assert refused.value.details["reason"] == "HOLDING_CONVERSATIONS"
    assert refused.value.details["conversations"] == "c1,c2"
    assert snapshot(kit.router) == before


def test_signing_out_while_holding_conversations_is_refused_for_a_custom_offline_status() -> None:
    kit = Kit(m.TenantSettings(custom_statuses=(m.CustomStatus("home", m.AgentStatus.OFFLINE),)))
    kit.queue()
    kit.agent("a")
    owned_by(kit, "a", "c1")

    with pytest.raises(FailedPrecondition):
        kit.status("a", m.AgentStatus.OFFLINE, custom="home")
    assert kit.router.agents["a"].status is m.AgentStatus.ONLINE


def test_signing_out_is_allowed_once_the_conversations_are_ended_or_in_wrap_up() -> None:
    kit = Kit(m.TenantSettings(wrap_up_seconds=60))
    kit.queue()
    kit.agent("a")
    owned_by(kit, "a", "c1")
    kit.end("c1")
    assert kit.state("c1") is S.WRAP_UP

    kit.status("a", m.AgentStatus.OFFLINE)

    assert kit.router.agents["a"].status is m.AgentStatus.OFFLINE
    kit.advance(60)
    assert kit.state("c1") is S.CLOSED


def test_signing_out_while_holding_conversations_hands_them_back_when_the_tenant_says_so() -> None:
    kit = Kit(REQUEUE)
    kit.queue()
    kit.agent("a")
    owned_by(kit, "a", "c1")
    kit.agent("b")
    kit.run(
        c.RequestTransfer(
            tenant=T,
            agent_id="a",
            conversation_id="c1",
            target=m.TransferTarget.AGENT,
            target_id="b",
        )
    )

    result = kit.status("a", m.AgentStatus.OFFLINE)

    (resolved,) = of_type(result.events, ev.TransferResolved)
    assert resolved.outcome is m.TransferOutcome.RESCINDED
    (queued,) = of_type(result.events, ev.ConversationQueued)
    assert (queued.conversation_id, queued.reason) == ("c1", m.QueueReason.AGENT_SIGNED_OUT)
    assert queued.previous_owner == "a"
    assert kit.offered_to("c1") == ("b",)
    agent = kit.router.agents["a"]
    assert (agent.status, agent.load, agent.conversations) == (m.AgentStatus.OFFLINE, 0, set())


def test_a_handed_back_conversation_waits_when_nobody_else_is_online() -> None:
    kit = Kit(REQUEUE)
    kit.queue()
    kit.agent("a")
    owned_by(kit, "a", "c1")

    kit.status("a", m.AgentStatus.OFFLINE)

    assert kit.state("c1") is S.QUEUED
    kit.agent("b")
    assert kit.offered_to("c1") == ("b",)


# --- custom statuses ---------------------------------------------------------------------------


def test_a_custom_status_named_alone_takes_its_base_status() -> None:
    desk = m.CustomStatus("at my desk", m.AgentStatus.ONLINE)
    kit = Kit(m.TenantSettings(custom_statuses=(desk,)))
    kit.queue()
    kit.agent("a", online=False)
    kit.start("c1")

    result = kit.run(
        c.SetAgentStatus(tenant=T, agent_id="a", status=None, custom_status="at my desk")
    )

    (changed,) = of_type(result.events, ev.AgentStatusChanged)
    assert (changed.status, changed.custom_status) == (m.AgentStatus.ONLINE, "at my desk")
    assert kit.offered_to("c1") == ("a",)


def test_a_status_is_required_without_a_custom_status() -> None:
    kit = Kit()
    kit.agent("a", online=False)

    with pytest.raises(InvalidArgument):
        kit.run(c.SetAgentStatus(tenant=T, agent_id="a", status=None))


# --- relaxed skills by presence ----------------------------------------------------------------

BILLING = (m.SkillRequirement("billing", 5),)


def presence_kit(**queue: Any) -> Kit:
    kit = Kit(skills=["billing"])
    kit.queue(requirements=BILLING, relax_when_none_online=True, **queue)
    return kit


def test_relaxed_skills_offer_to_other_online_agents_when_no_skilled_agent_is_online() -> None:
    kit = presence_kit()
    kit.agent("skilled", online=False, skills={"billing": 7})
    kit.agent("generalist")

    result = kit.start("c1")

    (stepped,) = of_type(result.events, ev.ConversationStepped)
    assert stepped.relaxed
    assert kit.offered_to("c1") == ("generalist",)
    assert not kit.conv("c1").group_key.requirements


def test_relaxed_skills_keep_the_skills_while_a_skilled_agent_is_online() -> None:
    kit = presence_kit()
    kit.agent("skilled", skills={"billing": 7})
    kit.agent("generalist")
    owned_by(kit, "skilled", "c1")

    result = kit.start("c2")

    assert not of_type(result.events, ev.ConversationStepped)
    assert kit.state("c2") is S.QUEUED  # the skilled agent is busy but online: it waits


def test_relaxed_skills_apply_only_to_queues_that_ask_for_them() -> None:
    kit = Kit(skills=["billing"])
    kit.queue(requirements=BILLING)
    kit.agent("generalist")

    kit.start("c1")

    assert kit.state("c1") is S.QUEUED


def test_relaxed_skills_release_waiting_conversations_when_the_last_skilled_agent_leaves() -> None:
    kit = presence_kit()
    kit.agent("skilled", skills={"billing": 7})
    owned_by(kit, "skilled", "c1")
    kit.start("c2")
    kit.agent("generalist")
    assert kit.state("c2") is S.QUEUED

    kit.end("c1")  # the skilled agent pulls c2 and takes it
    kit.assign("c2")
    kit.start("c3")
    assert kit.state("c3") is S.QUEUED
    kit.run(
        c.SetAgentStatus(
            tenant=T, agent_id="skilled", status=m.AgentStatus.AWAY, custom_status=None
        )
    )

    assert kit.offered_to("c3") == ("generalist",)


def test_relaxed_skills_follow_an_agent_losing_the_skill() -> None:
    kit = presence_kit()
    kit.queue("general")
    kit.agent("skilled", skills={"billing": 7})
    kit.start("c1", queue_id="general")
    kit.assign("c1")  # busy, yet online
    kit.agent("generalist")
    kit.start("c2")
    assert kit.state("c2") is S.QUEUED

    kit.run(c.ConfigureAgent(tenant=T, profile=m.AgentProfile("skilled", skills={"billing": 1})))

    assert kit.offered_to("c2") == ("generalist",)


def test_relaxed_skills_keep_the_queue_designations() -> None:
    kit = Kit(skills=["billing"])
    kit.run(c.DefineDepartment(tenant=T, department="sales"))
    kit.agent("outsider")
    kit.agent("seller", departments=frozenset({"sales"}))
    kit.queue(
        requirements=BILLING,
        relax_when_none_online=True,
        designated_departments=frozenset({"sales"}),
    )

    kit.start("c1")

    assert kit.offered_to("c1") == ("seller",)


def test_relaxed_skills_switched_on_release_the_waiting_conversations() -> None:
    kit = Kit(skills=["billing"])
    kit.queue(requirements=BILLING)
    kit.agent("generalist")
    kit.start("c1")
    assert kit.state("c1") is S.QUEUED

    kit.queue(requirements=BILLING, relax_when_none_online=True)

    assert kit.offered_to("c1") == ("generalist",)


def test_relaxed_skills_are_rebuilt_by_replaying_the_log() -> None:
    kit = presence_kit(relaxation=(m.RelaxationStep(30, level_drop=2),))
    kit.agent("skilled", skills={"billing": 7})
    owned_by(kit, "skilled", "c1")
    kit.start("c2")
    kit.agent("generalist", capacity=0.5)
    kit.status("skilled", m.AgentStatus.AWAY)
    kit.advance(45)
    rebuilt = Engine(ManualClock())

    rebuilt.replay(kit.log)

    assert snapshot(rebuilt.router(T)) == snapshot(kit.router)


def test_events_recorded_before_the_options_still_load() -> None:
    stepped = codec.decode(
        "ConversationStepped", '{"tenant":"acme","at":1.0,"conversation_id":"c1","step":1}'
    )
    assert isinstance(stepped, ev.ConversationStepped) and not stepped.relaxed
    configured = codec.decode(
        "TenantConfigured", '{"tenant":"acme","at":1.0,"settings":{"agent_idle_notify":60.0}}'
    )
    assert isinstance(configured, ev.TenantConfigured)
    settings = configured.settings
    assert settings.sign_out_with_conversations is m.SignOutPolicy.REFUSE
    assert not settings.agent_idle_tell_customer
    queue = codec.decode(
        "QueueConfigured", '{"tenant":"acme","at":1.0,"settings":{"queue_id":"q"}}'
    )
    assert isinstance(queue, ev.QueueConfigured) and not queue.settings.relax_when_none_online


# --- the agent-idle message to the customer ----------------------------------------------------


def idle_kit(settings: m.TenantSettings) -> Kit:
    kit = Kit(settings)
    kit.queue()
    kit.agent("a")
    kit.start("c1", language="zh")
    kit.assign("c1")
    kit.run(
        c.RecordMessage(
            tenant=T,
            conversation_id="c1",
            sender=m.Sender.CUSTOMER,
            message=m.MessageBody(text="hello?"),
        )
    )
    return kit


def test_agent_idle_tells_the_customer_the_agent_is_busy_when_the_tenant_says_so() -> None:
    texts = {"zh": {m.SystemMessage.AGENT_BUSY: "專員正在忙碌中"}}
    kit = idle_kit(
        m.TenantSettings(agent_idle_notify=60, agent_idle_tell_customer=True, texts=texts)
    )

    result = kit.advance(60)

    assert of_type(result.events, ev.AgentIdleNotified)
    (busy,) = of_type(result.events, ev.SystemMessageSent)
    assert (busy.kind, busy.language) == (m.SystemMessage.AGENT_BUSY, "zh")
    assert busy.text == "專員正在忙碌中"


def test_agent_idle_only_reminds_the_agent_by_default() -> None:
    kit = idle_kit(m.TenantSettings(agent_idle_notify=60))

    result = kit.advance(60)

    assert of_type(result.events, ev.AgentIdleNotified)
    assert not of_type(result.events, ev.SystemMessageSent)
