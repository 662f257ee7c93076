"""Customers' messages into the core: one ``ReceiveCustomerMessage`` call per message.

The core puts the message in the customer's open conversation on the channel, or starts one
with it as the first message (atomically: concurrent first messages of one customer land in one
conversation). The gateway keeps no copy of which conversation is open. Every call is idempotent
on the provider's message id, so a redelivered webhook changes nothing (even after the
conversation closed) and a retried call is safe. ``post`` returns only after the core stored the
message: acknowledge the provider after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2
from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.choices import OfferLog
from gateways.common.directory import Served


@dataclass(frozen=True, slots=True)
class Customer:
    """Who wrote, as the channel knows them. ``external_id`` is required."""

    external_id: str
    name: str = ""
    phone: str = ""
    email: str = ""
    ip_address: str = ""
    """A web visitor's IP address, if the gateway knows it (checked against the blocklist)."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One customer message. ``provider_message_id`` is the provider's id (the dedupe key)."""

    provider_message_id: str
    text: str = ""
    attachments: Sequence[conversation_pb2.Attachment] = ()
    sent_at: dt.datetime | None = None
    region: str = ""
    language: str = ""
    tags: Sequence[str] = field(default_factory=tuple)
    selected_option_id: str = ""
    """The option the customer picked, when the provider says (a tapped button); else the
    inbox looks for a typed answer to the customer's standing offer (``choices``)."""
    reference: str = ""
    """The QR code's or campaign link's reference the customer came with (web chat: the
    page's ``ref``): a conversation this message starts carries it (bots' reference triggers,
    QR codes' counts)."""
    page: str = ""
    """The web page the customer wrote from and its referrer (web chat): a conversation this
    message starts carries them (visitor reports)."""
    referrer: str = ""


@dataclass(frozen=True, slots=True)
class Posted:
    conversation: str
    """``conversations/{id}``."""
    message: conversation_pb2.Message
    duplicate: bool
    started: bool
    """True when this message started the conversation."""
    blocked: bool = False
    """The sender is blocked: the core kept the message for the record only (``conversation``
    is empty, ``message`` unset). Acknowledge the provider as usual."""


def _timestamp(at: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if at is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


class Inbox:
    """See the module docstring. One instance serves every channel; ``offers`` (the choices
    offered to customers) maps a typed answer ("2", a title) to the option picked."""

    def __init__(self, offers: OfferLog | None = None) -> None:
        self._offers = offers

    def selected(self, served: Served, customer: str, text: str) -> str:
        """The id of the option ``text`` answers the customer's standing offer with, or ""."""
        if self._offers is None or not text:
            return ""
        found = self._offers.pick(served.tenant, served.channel.channel_id, customer, text)
        return "" if found is None else found.id

    async def post(self, served: Served, customer: Customer, message: Inbound) -> Posted:
        settings = served.channel.settings
        selected = message.selected_option_id or self.selected(
            served, customer.external_id, message.text
        )
        received = await served.client.receive_customer_message(
            pb.ReceiveCustomerMessageRequest(
                channel=served.channel.channel_id,
                customer=conversation_pb2.CustomerIdentity(
                    external_id=customer.external_id,
                    name=customer.name,
                    phone=customer.phone,
                    email=customer.email,
                    ip_address=customer.ip_address,
                ),
                message=pb.CustomerMessage(
                    text=message.text,
                    attachments=list(message.attachments),
                    provider_message_id=message.provider_message_id,
                    send_time=_timestamp(message.sent_at),
                    selected_option_id=selected,
                ),
                start=pb.ConversationOptions(
                    queue=settings.get("queue", ""),
                    region=message.region,
                    language=message.language or settings.get("language", ""),
                    tags=list(message.tags),
                    reference=message.reference,
                    page=message.page,
                    referrer=message.referrer,
                ),
            )
        )
        return Posted(
            received.conversation.name,
            received.message,
            duplicate=received.duplicate,
            started=received.started,
            blocked=received.blocked,
        )
