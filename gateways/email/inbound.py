"""The SMTP side that receives customers' mail: an aiosmtpd handler.

``RCPT TO`` picks the channel (its ``address`` setting, case-insensitive); an unknown recipient,
or a peer outside the optional allow-list, gets 550. After ``DATA`` the mail is parsed and
stored in the core before 250 is answered: a malformed mail gets 554 and an attachment over the
limit 552 (the whole mail over the limit gets 552 from aiosmtpd itself), all storing nothing;
any other failure (the core away) gets 451 so the sending server retries later. Automatic mail
(bounces, auto-replies) is accepted and dropped, so two robots cannot answer each other forever.
A reply whose first line is the number or title of an option offered (numbered in the answer
it replies to) carries that option's id as ``selected_option_id``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from google.protobuf import timestamp_pb2
from usher.client import FailedPrecondition, InvalidArgument, NotFound
from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.directory import Served
from gateways.common.gateway import Gateway
from gateways.common.inbox import Customer, Inbound
from gateways.email.mail import Mail, Malformed, parse
from gateways.email.threads import Threads

log = structlog.get_logger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def channel_for(gateway: Gateway, address: str) -> Served | None:
    """The served e-mail channel whose ``address`` setting is ``address`` (any case)."""
    wanted = address.strip().strip("<>").lower()
    for served in gateway.directory:
        if served.channel.settings.get("address", "").strip().lower() == wanted:
            return served
    return None


class SmtpInbox:
    """aiosmtpd handler (``handle_RCPT``, ``handle_DATA``); see the module docstring."""

    def __init__(self, gateway: Gateway, threads: Threads, allow_from: Sequence[Network]) -> None:
        self._gateway = gateway
        self._threads = threads
        self._allow_from = tuple(allow_from)

    def _allowed(self, session: Session) -> bool:
        if not self._allow_from:
            return True
        peer: Any = session.peer
        host = peer[0] if isinstance(peer, tuple) else peer
        try:
            ip = ipaddress.ip_address(str(host))
        except ValueError:
            return False
        return any(ip in network for network in self._allow_from)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self._allowed(session):
            return "550 5.7.1 This server does not take mail from your address"
        if channel_for(self._gateway, address) is None:
            return "550 5.1.1 No mailbox here by that name"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            mail = parse(envelope.original_content or b"")
        except Malformed as exc:
            return f"554 5.6.0 Malformed message: {exc}"
        except Exception as exc:  # the stdlib parser is lenient; whatever still breaks it
            log.info("unreadable mail refused", error=repr(exc))
            return "554 5.6.0 Malformed message"
        if mail.automatic or envelope.mail_from in (None, "", "<>"):
            log.info("automatic mail dropped", message_id=mail.message_id, sender=mail.sender)
            return "250 2.0.0 OK (automatic mail is not answered)"
        limit = self._gateway.blobs.max_bytes
        if any(len(f.data) > limit for f in mail.files):
            return f"552 5.3.4 An attachment is over the {limit}-byte limit"
        targets = {}
        for rcpt in envelope.rcpt_tos:
            served = channel_for(self._gateway, rcpt)
            if served is not None:
                targets[(served.tenant, served.channel.channel_id)] = served
        try:
            for served in targets.values():
                await self._store(served, mail)
        except InvalidArgument as exc:
            return f"554 5.6.0 Message refused: {exc}"
        except Exception as exc:  # the core is away, the gateway stops...: 4xx, never lose it
            log.warning("mail not stored; the sender will retry", error=repr(exc))
            return "451 4.3.0 Temporarily unable to take the message; try again later"
        return "250 2.0.0 OK"

    async def _store(self, served: Served, mail: Mail) -> None:
        """Post ``mail`` into its conversation once: the one it replies to, else the sender's."""
        tenant, channel = served.tenant, served.channel.channel_id
        if self._threads.received(tenant, channel, mail.message_id):
            return
        attachments = [
            self._gateway.blobs.attachment(
                self._gateway.blobs.put(f.data, content_type=f.content_type, name=f.name)
            )
            for f in mail.files
        ]
        self._threads.note_sender(
            tenant,
            channel,
            mail.sender,
            message_id=mail.message_id,
            subject=mail.subject,
            references=mail.references,
        )
        sent_at = min(mail.sent_at, dt.datetime.now(dt.UTC)) if mail.sent_at else None
        # an answer to choices offered: the reply's first line names one ("2", "Refund")
        picked = self._gateway.inbox.selected(served, mail.sender, first_line(mail.text))
        conversation = None
        known = self._threads.conversation_of(tenant, channel, mail.parents)
        if known is not None:
            try:
                await served.client.post_customer_message(
                    pb.PostCustomerMessageRequest(
                        conversation=known,
                        text=_text(mail, attachments, continuing=True),
                        attachments=attachments,
                        provider_message_id=mail.message_id,
                        send_time=_timestamp(sent_at),
                        selected_option_id=picked,
                    )
                )
                conversation = known
            except (FailedPrecondition, NotFound):  # ended: the sender's conversation takes it
                pass
        if conversation is None:
            posted = await self._gateway.inbox.post(
                served,
                Customer(mail.sender, name=mail.sender_name, email=mail.sender),
                Inbound(
                    mail.message_id,
                    text=_text(mail, attachments, continuing=False),
                    attachments=attachments,
                    sent_at=sent_at,
                    selected_option_id=picked,
                ),
            )
            if posted.blocked:  # kept for the record only: no thread to continue
                return
            conversation = posted.conversation
        self._threads.record_inbound(
            tenant,
            channel,
            conversation,
            message_id=mail.message_id,
            subject=mail.subject,
            references=mail.references,
        )


def _text(
    mail: Mail, attachments: Sequence[conversation_pb2.Attachment], *, continuing: bool
) -> str:
    """The body; a mail opening a thread leads with its subject, which often says it all."""
    if not continuing and mail.subject:
        return f"{mail.subject}\n\n{mail.text}".strip()
    if mail.text or attachments:
        return mail.text
    return mail.subject or "(empty e-mail)"


def first_line(text: str) -> str:
    """The first line of ``text`` that is not blank ("" when none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _timestamp(at: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if at is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp
