"""An agent's view of the event log: what their console is shown, as ``AgentEvent`` payloads.

A pure function of each event: events name the agents they concern (recipients of an offer,
the owner a message reached, the agent a conversation was taken from), so a stream resumed
after any id shows exactly what it would have shown connected, with no state to rebuild and no
store read per event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from usher.v1 import agent_service_pb2, conversation_pb2, customer_profile_pb2

from core.api import convert as cv
from core.api import resources as res
from core.api.outbound import receipt
from core.api.profile_values import profile_to_proto
from core.routing import events as ev
from core.routing import model as m

S = m.ConversationState


def _assignment(conversation_id: str, state: m.ConversationState, reason: str) -> dict[str, Any]:
    return {
        "assignment_changed": agent_service_pb2.AssignmentChanged(
            conversation=cv.conversation_name(conversation_id),
            state=cv.state_to_proto(state),
            reason=reason,
        )
    }


def agent_event(me: str, event: ev.Event) -> dict[str, Any] | None:
    """Agent ``me``'s view of one event (an AgentEvent payload), or None."""
    match event:
        case ev.OfferMade() if me in event.agent_ids:
            return {"offer": res.offer_from_event(event)}
        case ev.OfferAccepted() if me in event.agent_ids or event.agent_id == me:
            if event.agent_id == me:
                return _assignment(event.conversation_id, S.ACTIVE, "offer_accepted")
            rescinded = agent_service_pb2.OfferRescinded(
                offer=cv.offer_name(event.offer_id), reason="accepted_elsewhere"
            )
            return {"offer_rescinded": rescinded}
        case ev.OfferDeclined() if me in event.agent_ids:
            rescinded = agent_service_pb2.OfferRescinded(
                offer=cv.offer_name(event.offer_id), reason=event.reason.value
            )
            return {"offer_rescinded": rescinded}
        case ev.ConversationAssigned():
            if event.agent_id == me:
                return _assignment(event.conversation_id, S.ACTIVE, event.via)
            if event.previous_owner == me:
                return _assignment(event.conversation_id, S.ACTIVE, "reassigned")
        case ev.TransferRequested() if event.to_agent == me:
            return {"transfer_request": res.transfer_from_event(event)}
        case ev.TransferResolved() if me in (event.to_agent, event.from_agent):
            return {"transfer_resolved": res.transfer_from_event(event)}
        case ev.ConversationTransferred() if event.from_agent == me:
            return _assignment(event.conversation_id, S.QUEUED, "transfer")
        case ev.ConversationEnded() if event.agent_id == me:
            state = S.WRAP_UP if event.wrap_up_until is not None else S.CLOSED
            return _assignment(event.conversation_id, state, event.reason.value)
        case ev.WrapUpFinished() if event.agent_id == me:
            return _assignment(event.conversation_id, S.CLOSED, "agent_ended")
        case ev.ConversationReturnedToBot() if event.previous_owner == me:
            return _assignment(event.conversation_id, S.BOT, "auto_mode")
        case ev.ConversationQueued() if (
            event.previous_owner == me and event.reason is not m.QueueReason.TRANSFER
        ):
            return _assignment(event.conversation_id, S.QUEUED, event.reason.value)
        case ev.AgentIdleNotified() if event.agent_id == me:
            reminder = agent_service_pb2.Reminder(
                kind=agent_service_pb2.REMINDER_KIND_AGENT_IDLE, since=cv.timestamp(event.at)
            )
            return {"reminder": reminder}
        case ev.AgentStatusChanged() if event.agent_id == me:
            changed = agent_service_pb2.StatusChanged(
                status=cv.status_to_proto(event.status),
                custom_status=event.custom_status or "",
                reason=event.reason,
            )
            return {"status_changed": changed}
        case ev.TypingChanged(typist=m.Sender.CUSTOMER) if event.owner == me:
            return {"typing": conversation_pb2.Typing(active=event.active)}
        case ev.ReceiptRecorded(reader=m.Sender.CUSTOMER) if event.owner == me:
            return {"receipt": receipt(event)}
        case ev.MessageRecorded(sender=m.Sender.CUSTOMER | m.Sender.BOT) if event.owner == me:
            return {"message": res.message_from_event(event)}
        case ev.BotHandedOff() if me in event.agent_ids:
            card = m.HandOffCard.card(
                bot_id=event.bot_id,
                version=event.version,
                reason=event.reason,
                fields=event.fields,
                at=event.at,
            )
            return {"bot_hand_off": res.hand_off_from_card(card)}
        case ev.CustomerProfileChanged() if me in event.agent_ids:
            profile = customer_profile_pb2.CustomerProfileChanged(
                profile=profile_to_proto(event.profile)
            )
            return {"customer_profile_changed": profile}
    return None


_NOBODY: tuple[str | None, ...] = ()

_AUDIENCES: dict[type, Callable[[Any], tuple[str | None, ...]]] = {
    ev.OfferMade: lambda e: e.agent_ids,
    ev.OfferAccepted: lambda e: (*e.agent_ids, e.agent_id),
    ev.OfferDeclined: lambda e: e.agent_ids,
    ev.ConversationAssigned: lambda e: (e.agent_id, e.previous_owner),
    ev.TransferRequested: lambda e: (e.to_agent,),
    ev.TransferResolved: lambda e: (e.to_agent, e.from_agent),
    ev.ConversationTransferred: lambda e: (e.from_agent,),
    ev.ConversationEnded: lambda e: (e.agent_id,),
    ev.WrapUpFinished: lambda e: (e.agent_id,),
    ev.ConversationReturnedToBot: lambda e: (e.previous_owner,),
    ev.ConversationQueued: lambda e: (
        (e.previous_owner,) if e.reason is not m.QueueReason.TRANSFER else _NOBODY
    ),
    ev.AgentIdleNotified: lambda e: (e.agent_id,),
    ev.AgentStatusChanged: lambda e: (e.agent_id,),
    ev.TypingChanged: lambda e: (e.owner,) if e.typist is m.Sender.CUSTOMER else _NOBODY,
    ev.ReceiptRecorded: lambda e: (e.owner,) if e.reader is m.Sender.CUSTOMER else _NOBODY,
    ev.MessageRecorded: lambda e: (e.owner,) if e.sender is not m.Sender.AGENT else _NOBODY,
    ev.CustomerProfileChanged: lambda e: e.agent_ids,
    ev.BotHandedOff: lambda e: e.agent_ids,
}
"""The agents each kind of event is shown to (``agent_event`` has a case for each)."""


def audience(event: ev.Event) -> tuple[str | None, ...]:
    found = _AUDIENCES.get(type(event))
    return _NOBODY if found is None else found(event)


class _LastAudience:
    """The audience of the event last asked about: a feed offers each event to all of a
    tenant's streams in a row, so it is worked out once, not once per stream."""

    event: ev.Event | None = None
    agents: frozenset[str | None] = frozenset()

    @classmethod
    def of(cls, event: ev.Event) -> frozenset[str | None]:
        if event is not cls.event:
            cls.event, cls.agents = event, frozenset(audience(event))
        return cls.agents


def may_concern(me: str) -> Callable[[ev.Event], bool]:
    """The stream's prefilter (``Subscription`` accepts), exact since the view is a pure
    function of the event: a tenant's many agent streams do not wake for others' events."""
    return lambda event: me in _LastAudience.of(event)
