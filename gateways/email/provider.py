"""The e-mail provider: an SMTP listener for customers' mail, SMTP submission for answers.

Listener options come from the constructor or the environment: ``USHER_GATEWAY_SMTP_HOST``
(default: the gateway's host), ``USHER_GATEWAY_SMTP_PORT`` (2525),
``USHER_GATEWAY_SMTP_MAX_BYTES`` (largest mail taken; default: room for one attachment of
``max_attachment_bytes`` encoded in base64 plus ``max_body_bytes``) and
``USHER_GATEWAY_SMTP_ALLOW_FROM`` (comma-separated networks allowed to deliver; empty: any).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Sequence
from typing import ClassVar

import structlog
from aiosmtpd.smtp import SMTP
from usher.v1 import channel_pb2, conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.choices import numbered_text
from gateways.common.directory import MissingSetting, Served
from gateways.common.gateway import Gateway
from gateways.common.provider import BroadcastMessage, DeliveryError, Provider
from gateways.email.inbound import Network, SmtpInbox
from gateways.email.outbound import Relay, Reply, fetch, message_id
from gateways.email.threads import Threads

log = structlog.get_logger(__name__)


class Email(Provider):
    """See the module docstring; channel settings are described in docs/gateways/email.md."""

    name: ClassVar[str] = "email"
    channel_type = channel_pb2.CHANNEL_TYPE_EMAIL
    broadcast_rate: ClassVar[float] = 5.0
    """Each broadcast mail is one SMTP session: relays throttle more than that."""

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        max_message_bytes: int | None = None,
        allow_from: Sequence[str] | None = None,
    ) -> None:
        env = os.environ
        self.host = host or env.get("USHER_GATEWAY_SMTP_HOST") or None
        self.port = port if port is not None else int(env.get("USHER_GATEWAY_SMTP_PORT", "2525"))
        limit = max_message_bytes or env.get("USHER_GATEWAY_SMTP_MAX_BYTES")
        self.max_message_bytes = int(limit) if limit else None
        networks = (
            allow_from
            if allow_from is not None
            else env.get("USHER_GATEWAY_SMTP_ALLOW_FROM", "").split(",")
        )
        self.allow_from: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip()
        )
        self._threads: Threads | None = None
        self._server: asyncio.Server | None = None

    def threads(self, gateway: Gateway) -> Threads:
        if self._threads is None:
            self._threads = Threads(gateway.settings.data_dir / "email.sqlite3")
        return self._threads

    def size_limit(self, gateway: Gateway) -> int:
        settings = gateway.settings
        return self.max_message_bytes or (
            settings.max_attachment_bytes * 4 // 3 + settings.max_body_bytes
        )

    async def start(self, gateway: Gateway) -> None:
        loop = asyncio.get_running_loop()
        handler = SmtpInbox(gateway, self.threads(gateway), self.allow_from)
        limit, hostname = self.size_limit(gateway), socket.gethostname()
        host = self.host or gateway.settings.host
        self._server = await loop.create_server(
            lambda: SMTP(
                handler,
                data_size_limit=limit,
                hostname=hostname,
                enable_SMTPUTF8=True,
                loop=loop,
            ),
            host,
            self.port,
        )
        log.info("smtp listening", host=host, port=self.port, max_bytes=limit)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._threads is not None:
            self._threads.close()
            self._threads = None

    async def send_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str:
        """A mail from the channel's address with the broadcast's subject and text, its
        Message-ID derived from the send's key: SMTP takes no idempotency key, so a resend after
        a crash is the same mail, which mailboxes keep once (the default reconciliation, None,
        resends). The Message-ID names the send."""
        tenant, channel = served.tenant, served.channel.channel_id
        try:
            address = served.channel.setting("address")
            relay = Relay.of(served.channel)
        except (MissingSetting, ValueError) as exc:
            raise DeliveryError(str(exc), transient=False) from exc
        mail = Reply(
            sender=address,
            sender_name=served.channel.setting("from_name", served.channel.display_name),
            recipient=message.address,
            message_id=message_id(tenant, channel, message.key, address),
            text=message.text,
            default_subject=message.subject,
        ).compose()
        mail["List-Unsubscribe"] = f"<mailto:{address}?subject=unsubscribe>"
        await relay.send(mail, address, message.address)
        return str(mail["Message-ID"])

    async def deliver(self, gateway: Gateway, served: Served, item: pb.OutboundItem) -> None:
        kind = item.WhichOneof("item")
        tenant, channel = served.tenant, served.channel.channel_id
        attachments: Sequence[conversation_pb2.Attachment] = ()
        if kind == "message":
            text, attachments, key = item.message.text, item.message.attachments, item.message.name
            if item.message.HasField("choices"):  # numbered: the reply's first line answers
                text = numbered_text(text, item.message.choices)
            gateway.offers.note(tenant, channel, item, numbered=True)
        elif kind == "system_message" and item.system_message.text:
            text, attachments, key = item.system_message.text, (), f"event/{item.event_id}"
        else:  # typing, receipts and state changes have no e-mail form
            gateway.offers.note(tenant, channel, item, numbered=True)
            return
        try:
            address = served.channel.setting("address")
            relay = Relay.of(served.channel)
        except (MissingSetting, ValueError) as exc:
            raise DeliveryError(str(exc), transient=False) from exc
        sender_name = served.channel.setting("from_name", served.channel.display_name)
        threads = self.threads(gateway)
        files, missing = [], []
        for attachment in attachments:
            try:
                files.append(await fetch(gateway, attachment))
            except DeliveryError as exc:
                if exc.transient:
                    raise
                # the answer still goes out: a missing file must not swallow the agent's words
                log.warning("attachment left out", name=attachment.name, error=str(exc))
                missing.append(f"[{attachment.name or 'a file'} could not be attached]")
        text = "\n\n".join([text, *missing]) if missing else text
        limit = self.size_limit(gateway)
        if sum(len(f.data) for f in files) > limit:
            raise DeliveryError(f"attachments over {limit} bytes in all", transient=False)
        reply = Reply(
            sender=address,
            sender_name=sender_name,
            recipient=item.external_id,
            message_id=message_id(tenant, channel, key, address),
            text=text,
            files=files,
            thread=threads.thread(tenant, channel, item.conversation, item.external_id),
            default_subject=served.channel.setting("subject", sender_name or address),
            automatic=kind == "system_message",
            time=item.time.ToDatetime(tzinfo=dt.UTC) if item.HasField("time") else None,
        )
        # recorded first (the Message-ID is fixed by the key, so a retry reuses it): a reply or
        # a bounce naming this mail finds its conversation and message even if it is read before
        # send returns, or after a crash here
        threads.record_outbound(tenant, channel, item.conversation, reply.message_id)
        if kind == "message":
            gateway.sent.remember(tenant, channel, reply.message_id, item.message.name)
        await relay.send(reply.compose(), address, item.external_id)
