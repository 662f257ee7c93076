"""Customers' messages into the core: find or start the customer's conversation, post once.

A message goes to the customer's open conversation on the channel; when there is none (or it
has ended) it starts one, with the message as its first. Every call is idempotent on the
provider's message id, so a redelivered webhook changes nothing and a retried call is safe.
``post`` returns only after the core stored the message: acknowledge the provider after it.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from usher.client import AlreadyExists, FailedPrecondition, NotFound
from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.directory import Served


@dataclass(frozen=True, slots=True)
class Customer:
    """Who wrote, as the channel knows them. ``external_id`` is required."""

    external_id: str
    name: str = ""
    phone: str = ""
    email: str = ""


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


@dataclass(frozen=True, slots=True)
class Posted:
    conversation: str
    """``conversations/{id}``."""
    message: conversation_pb2.Message
    duplicate: bool
    started: bool
    """True when this message started the conversation."""


def _timestamp(at: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if at is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


class Inbox:
    """See the module docstring. Remembers each customer's open conversation (bounded)."""

    def __init__(self, *, remember: int = 50_000) -> None:
        self._open: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._remember = remember

    async def post(self, served: Served, customer: Customer, message: Inbound) -> Posted:
        key = (served.tenant, served.channel.channel_id, customer.external_id)
        known = self._open.get(key)
        if known is not None:
            try:
                return await self._append(served, known, message)
            except (FailedPrecondition, NotFound):
                self._open.pop(key, None)  # ended or forgotten: start anew
        try:
            return await self._start(served, customer, message, key)
        except AlreadyExists as exc:  # the customer has an open conversation: write to it
            resource = exc.detail(error_details_pb2.ResourceInfo)
            if resource is None or not resource.resource_name:
                raise
            self._keep(key, resource.resource_name)
            return await self._append(served, resource.resource_name, message)

    async def _start(
        self, served: Served, customer: Customer, message: Inbound, key: tuple[str, str, str]
    ) -> Posted:
        started = await served.client.start_conversation(
            pb.StartConversationRequest(
                request_id=f"{served.channel.channel_id}:{message.provider_message_id}",
                channel=served.channel.channel_id,
                customer=conversation_pb2.CustomerIdentity(
                    external_id=customer.external_id,
                    name=customer.name,
                    phone=customer.phone,
                    email=customer.email,
                ),
                queue=served.channel.settings.get("queue", ""),
                region=message.region,
                language=message.language or served.channel.settings.get("language", ""),
                tags=list(message.tags),
                first_message=pb.CustomerMessage(
                    text=message.text,
                    attachments=list(message.attachments),
                    provider_message_id=message.provider_message_id,
                    send_time=_timestamp(message.sent_at),
                ),
            )
        )
        self._keep(key, started.conversation.name)
        return Posted(
            started.conversation.name, started.first_message, started.duplicate, started=True
        )

    async def _append(self, served: Served, conversation: str, message: Inbound) -> Posted:
        posted = await served.client.post_customer_message(
            pb.PostCustomerMessageRequest(
                conversation=conversation,
                text=message.text,
                attachments=list(message.attachments),
                provider_message_id=message.provider_message_id,
                send_time=_timestamp(message.sent_at),
            )
        )
        return Posted(conversation, posted.message, posted.duplicate, started=False)

    def _keep(self, key: tuple[str, str, str], conversation: str) -> None:
        self._open[key] = conversation
        self._open.move_to_end(key)
        while len(self._open) > self._remember:
            self._open.popitem(last=False)
