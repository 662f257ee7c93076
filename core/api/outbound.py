"""The gateways' view of the event log: what customers are shown, as ``OutboundItem`` payloads.

A pure translation of events (no store read per event): messages and system messages carry
their text, state changes their reason. Where an item goes (channel and the customer's id
there) comes from ``Targets``, learned from ``ConversationStarted`` as it passes and read once
from the store for conversations started before this front door.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

from usher.v1 import conversation_pb2

from core.api import convert as cv
from core.api import resources as res
from core.routing import events as ev
from core.routing import model as m
from core.store.reads import Reads

S = m.ConversationState


class Targets:
    """(channel, external id) per conversation: bounded, newest kept."""

    def __init__(self, reads: Reads, size: int = 100_000) -> None:
        self._reads = reads
        self._size = size
        self._known: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()

    def learn(self, tenant: str, event: ev.ConversationStarted) -> None:
        self._known[tenant, event.conversation_id] = (event.channel, event.customer.external_id)
        while len(self._known) > self._size:
            self._known.popitem(last=False)

    async def get(self, tenant: str, conversation_id: str) -> tuple[str, str] | None:
        found = self._known.get((tenant, conversation_id))
        if found is None:
            found = await self._reads.target(tenant, conversation_id)
            if found is not None:
                self._known[tenant, conversation_id] = found
        return found


def _state(state: m.ConversationState, reason: str = "") -> dict[str, Any]:
    return {
        "state_change": conversation_pb2.StateChange(state=cv.state_to_proto(state), reason=reason)
    }


_SHOWN_TO_CUSTOMERS: Final = (
    ev.ConversationStarted,
    ev.SystemMessageSent,
    ev.ConversationQueued,
    ev.OfferMade,
    ev.OfferAccepted,
    ev.ConversationAssigned,
    ev.ConversationEnded,
    ev.WrapUpFinished,
    ev.ConversationAbandoned,
    ev.ConversationReturnedToBot,
)


def for_customers(event: ev.Event) -> bool:
    """The outbound stream's prefilter (``Subscription`` accepts): what ``outbound_item`` may
    turn into an item (and ``ConversationStarted``, which teaches ``Targets``)."""
    match event:
        case ev.MessageRecorded():
            return event.sender in (m.Sender.AGENT, m.Sender.BOT)
        case ev.TypingChanged():
            return event.typist is m.Sender.AGENT
        case ev.ReceiptRecorded():
            return event.reader is m.Sender.AGENT
    return isinstance(event, _SHOWN_TO_CUSTOMERS)


def receipt(event: ev.ReceiptRecorded) -> conversation_pb2.Receipt:
    status = (
        conversation_pb2.RECEIPT_STATUS_DELIVERED
        if event.status == "delivered"
        else conversation_pb2.RECEIPT_STATUS_READ
    )
    name = cv.message_name(event.conversation_id, event.message_id)
    return conversation_pb2.Receipt(message=name, status=status)


def outbound_item(event: ev.Event) -> dict[str, Any] | None:
    """The payload (keyword arguments of ``OutboundItem``'s oneof) of one event, or None: at
    most one per event, since an item's ``event_id`` is the event's."""
    match event:
        case ev.MessageRecorded(sender=m.Sender.AGENT | m.Sender.BOT):
            return {"message": res.message_from_event(event)}
        case ev.SystemMessageSent():
            kind = cv.system_kind_to_proto(event.kind)
            return {
                "system_message": conversation_pb2.SystemMessage(
                    kind=kind, text=event.text, language=event.language
                )
            }
        case ev.TypingChanged(typist=m.Sender.AGENT):
            agent = cv.agent_name(event.agent_id) if event.agent_id else ""
            return {"typing": conversation_pb2.Typing(active=event.active, agent=agent)}
        case ev.ReceiptRecorded(reader=m.Sender.AGENT):
            return {"receipt": receipt(event)}
        case ev.ConversationQueued():
            return _state(S.QUEUED, event.reason.value)
        case ev.OfferMade():
            return _state(S.OFFERED)
        case ev.OfferAccepted():
            return _state(S.ACTIVE, "offer_accepted")
        case ev.ConversationAssigned():
            return _state(S.ACTIVE, event.via)
        case ev.ConversationEnded():
            state = S.WRAP_UP if event.wrap_up_until is not None else S.CLOSED
            return _state(state, event.reason.value)
        case ev.WrapUpFinished():
            return _state(S.CLOSED, "agent_ended")
        case ev.ConversationAbandoned():
            return _state(S.ABANDONED, "customer_left")
        case ev.ConversationReturnedToBot():
            return _state(S.BOT)
    return None
