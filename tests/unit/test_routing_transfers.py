"""Transfers to agents (an offer the sender keeps until accepted), queues and departments."""

from __future__ import annotations

import pytest

from core.routing import CapacityExceeded, FailedPrecondition, InvalidArgument, PermissionDenied
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from tests.unit.engine_kit import Kit, T, of_type

S = m.ConversationState
TransferTarget = m.TransferTarget


def active_kit() -> Kit:
    """Agents ann (owning c1) and bob, both online with room for one conversation."""
    kit = Kit(m.TenantSettings(transfer_timeout=30))
    kit.run(c.DefineDepartment(tenant=T, department="sales"))
    kit.queue()
    kit.queue("billing")
    kit.agent("ann")
    kit.start("c1")
    kit.assign("c1")
    kit.agent("bob", departments=frozenset({"sales"}))
    return kit


def transfer(kit: Kit, target: m.TransferTarget, target_id: str, agent: str = "ann") -> str:
    result = kit.run(
        c.RequestTransfer(
            tenant=T,
            agent_id=agent,
            conversation_id="c1",
            target=target,
            target_id=target_id,
            note="customer asks about invoices",
        )
    )
    requested = of_type(result.events, ev.TransferRequested)
    return requested[0].transfer_id if requested else ""


def test_a_transfer_to_an_agent_stays_with_the_sender_until_accepted() -> None:
    kit = active_kit()
    transfer_id = transfer(kit, TransferTarget.AGENT, "bob")

    assert kit.conv("c1").owner == "ann"
    assert kit.router.agents["bob"].load == 1000, "bob's room is reserved meanwhile"

    kit.run(c.AnswerTransfer(tenant=T, agent_id="bob", transfer_id=transfer_id, accept=True))

    assert kit.conv("c1").owner == "bob"
    assert kit.router.agents["ann"].load == 0
    (record,) = kit.conv("c1").transfers
    assert (record.from_agent, record.target_id, record.note, record.outcome) == (
        "ann",
        "bob",
        "customer asks about invoices",
        m.TransferOutcome.ACCEPTED,
    )


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [("reject", m.TransferOutcome.REJECTED), ("cancel", m.TransferOutcome.CANCELLED)],
)
def test_a_rejected_or_cancelled_transfer_leaves_the_conversation_with_the_sender(
    answer: str, outcome: m.TransferOutcome
) -> None:
    kit = active_kit()
    transfer_id = transfer(kit, TransferTarget.AGENT, "bob")

    if answer == "reject":
        kit.run(c.AnswerTransfer(tenant=T, agent_id="bob", transfer_id=transfer_id, accept=False))
    else:
        kit.run(c.CancelTransfer(tenant=T, agent_id="ann", transfer_id=transfer_id))

    assert kit.conv("c1").owner == "ann"
    assert kit.router.agents["bob"].load == 0
    assert kit.conv("c1").transfers[-1].outcome is outcome


def test_an_unanswered_transfer_expires() -> None:
    kit = active_kit()
    transfer(kit, TransferTarget.AGENT, "bob")

    result = kit.advance(30)

    assert of_type(result.events, ev.TransferResolved)[0].outcome is m.TransferOutcome.EXPIRED
    assert kit.conv("c1").owner == "ann"


def test_only_the_target_answers_and_only_the_sender_cancels() -> None:
    kit = active_kit()
    transfer_id = transfer(kit, TransferTarget.AGENT, "bob")

    with pytest.raises(PermissionDenied):
        kit.run(c.AnswerTransfer(tenant=T, agent_id="ann", transfer_id=transfer_id, accept=True))
    with pytest.raises(PermissionDenied):
        kit.run(c.CancelTransfer(tenant=T, agent_id="bob", transfer_id=transfer_id))


def test_a_transfer_to_oneself_is_refused() -> None:
    kit = active_kit()
    with pytest.raises(InvalidArgument, match="themself"):
        transfer(kit, TransferTarget.AGENT, "ann")


def test_a_transfer_needs_room_at_the_target_and_one_at_a_time() -> None:
    kit = active_kit()
    kit.start("c2")
    kit.assign("c2")  # bob is now full

    with pytest.raises(CapacityExceeded):
        transfer(kit, TransferTarget.AGENT, "bob")
    kit.agent("cat")
    transfer(kit, TransferTarget.AGENT, "cat")
    with pytest.raises(FailedPrecondition, match="pending transfer"):
        transfer(kit, TransferTarget.QUEUE, "billing")


def test_only_the_owner_may_transfer() -> None:
    kit = active_kit()
    with pytest.raises(PermissionDenied):
        transfer(kit, TransferTarget.AGENT, "ann", agent="bob")


def test_a_transfer_to_a_queue_requeues_it_without_offering_it_back_to_the_sender() -> None:
    kit = active_kit()
    kit.status("bob", m.AgentStatus.AWAY)

    transfer(kit, TransferTarget.QUEUE, "billing")

    conv = kit.conv("c1")
    assert (conv.state, conv.queue_id, conv.owner) == (S.QUEUED, "billing", None)
    kit.status("bob", m.AgentStatus.ONLINE)
    assert kit.offered_to("c1") == ("bob",)
    assert conv.transfers[-1].target is TransferTarget.QUEUE


def test_a_transfer_to_a_department_waits_for_its_members() -> None:
    kit = active_kit()
    kit.start("c2")
    kit.assign("c2")  # bob, the only sales agent, is busy
    kit.agent("cat")  # free, but not in sales

    transfer(kit, TransferTarget.DEPARTMENT, "sales")

    assert kit.state("c1") is S.QUEUED
    kit.end("c2")
    assert kit.offered_to("c1") == ("bob",)
    assert kit.live_offer("c1").decision.filters == "department in sales"


def test_ending_a_conversation_rescinds_its_pending_transfer() -> None:
    kit = active_kit()
    transfer(kit, TransferTarget.AGENT, "bob")

    kit.end("c1")

    assert kit.conv("c1").transfers[-1].outcome is m.TransferOutcome.RESCINDED
    assert kit.router.agents["bob"].load == 0
