"""The e-mail gateway against a real core: customers' mail in through its SMTP listener (sent
with smtplib), the agent's answers out to a fake SMTP relay (aiosmtpd) that records what it got,
threaded by Message-ID, In-Reply-To and References."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from usher.v1 import agent_service_pb2, channel_pb2, conversation_pb2

from gateways.common.provider import DeliveryError
from gateways.email import Email
from gateways.email.outbound import fetch
from tests.integration.gateways.kit import WAIT, Core, core, eventually, free_port, gateway

ADDRESS = "support@acme.example"
PDF = b"%PDF-1.4 a tiny receipt"


@dataclass
class Relay:
    """A fake outbound SMTP server: requires AUTH (user/pass), records every mail."""

    port: int
    received: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert session.authenticated, "mail submitted without AUTH"
        parsed = BytesParser(policy=policy.default).parsebytes(envelope.original_content or b"")
        assert isinstance(parsed, EmailMessage)
        self.received.append((envelope, parsed))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=(data.login, data.password) == (b"relay-user", b"relay-pass"))

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [mail for envelope, mail in self.received if envelope.rcpt_tos == [address]]

    def answer(self, text: str) -> EmailMessage | None:
        for _, mail in self.received:
            body = mail.get_body(preferencelist=("plain",))
            if isinstance(body, EmailMessage) and text in body.get_content():
                return mail
        return None


@contextlib.asynccontextmanager
async def relay() -> AsyncIterator[Relay]:
    loop = asyncio.get_running_loop()
    fake = Relay(free_port())
    server = await loop.create_server(
        lambda: SMTP(
            fake,
            hostname="relay.test",
            authenticator=fake.authenticate,
            auth_require_tls=False,
            loop=loop,
        ),
        "127.0.0.1",
        fake.port,
    )
    try:
        yield fake
    finally:
        server.close()


def channel(relay_port: int) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        type=channel_pb2.CHANNEL_TYPE_EMAIL,
        display_name="Acme e-mail",
        settings={
            "address": ADDRESS,
            "smtp_host": "127.0.0.1",
            "smtp_port": str(relay_port),
            "smtp_starttls": "false",
            "from_name": "Acme Support",
        },
        secrets={"smtp_username": "relay-user", "smtp_password": "relay-pass"},
    )


def mail(
    text: str = "",
    *,
    sender: str = "Alice Doe <Alice@Example.com>",
    to: str = ADDRESS,
    subject: str = "Order 42",
    message_id: str = "<m1@example.com>",
    in_reply_to: str = "",
    references: str = "",
    html: str = "",
    files: tuple[tuple[str, str, bytes], ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = "Mon, 01 Jan 2024 10:00:00 +0000"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in headers:
        message[name] = value
    if html:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text)
    for name, content_type, data in files:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes(policy=policy.SMTP)


def _submit(port: int, data: bytes, rcpt: str, sender: str, size: int | None) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
        smtp.ehlo()
        code, _ = smtp.mail(sender, [f"SIZE={size}"] if size else [])
        if code != 250:
            return code
        code, _ = smtp.rcpt(rcpt)
        if code not in (250, 251):
            return code
        code, _ = smtp.data(data)
        return code


async def submit(
    port: int,
    data: bytes,
    *,
    rcpt: str = ADDRESS,
    sender: str = "alice@example.com",
    size: int | None = None,
) -> int:
    """Deliver ``data`` to the gateway's SMTP port as a mail server would; the last SMTP code."""
    return await asyncio.to_thread(_submit, port, data, rcpt, sender, size)


@pytest.fixture
async def the_core(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Core]:
    async with core(pool, redis_url) as c:
        yield c


async def customer_texts(the_core: Core, conversation: str) -> list[str]:
    return [
        m.text
        for m in await the_core.transcript(conversation)
        if m.sender == conversation_pb2.SENDER_CUSTOMER
    ]


async def test_mail_in_answered_in_the_thread_with_attachments(
    the_core: Core, tmp_path: Path
) -> None:
    provider = Email(host="127.0.0.1", port=free_port())
    events = the_core.agent.events()
    async with (
        relay() as fake,
        gateway(the_core, provider, tmp_path, channel_id="mail", channel=channel(fake.port)) as gw,
    ):
        first = mail(
            "Where is my order?",
            to="Support@ACME.example",
            files=(("r.pdf", "application/pdf", PDF),),
        )
        assert await submit(provider.port, first, rcpt="Support@ACME.example") == 250
        conversation = await the_core.accept_next(events)
        [message] = [
            m
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert message.text == "Order 42\n\nWhere is my order?"
        assert message.provider_message_id == "<m1@example.com>"
        [attachment] = message.attachments
        assert (attachment.name, attachment.content_type, attachment.size) == (
            "r.pdf",
            "application/pdf",
            len(PDF),
        )
        assert attachment.sha256 == hashlib.sha256(PDF).hexdigest()
        assert gw.gateway.blobs.read(attachment.sha256) == PDF
        got = await the_core.agent.get_conversation(
            agent_service_pb2.GetConversationRequest(name=conversation)
        )
        customer = got.conversation.customer
        assert (customer.external_id, customer.name, customer.email) == (
            "alice@example.com",
            "Alice Doe",
            "alice@example.com",
        )

        # the same mail again (a sending server retrying): nothing new
        assert await submit(provider.port, first) == 250
        assert await the_core.message_count() == 1

        # the welcome system message went out as an automatic mail in the thread
        welcome = (await eventually(lambda: fake.mails_to("alice@example.com")))[0]
        assert welcome["Auto-Submitted"] == "auto-generated"
        assert welcome["In-Reply-To"] == "<m1@example.com>"

        # the agent answers with a file; it arrives threaded, authenticated, as multipart
        logo = gw.gateway.blobs.put(b"\x89PNG logo", content_type="image/png", name="logo.png")
        await the_core.reply(
            conversation,
            "Hi Alice, it ships today.",
            attachments=[gw.gateway.blobs.attachment(logo)],
        )
        answer = await eventually(lambda: fake.answer("it ships today"))
        envelope = next(e for e, m in fake.received if m is answer)
        assert envelope.mail_from == ADDRESS
        assert envelope.rcpt_tos == ["alice@example.com"]
        assert fake.logins[-1] == (b"relay-user", b"relay-pass")
        assert answer["From"] == f"Acme Support <{ADDRESS}>"
        assert answer["To"] == "alice@example.com"
        assert answer["Subject"] == "Re: Order 42"
        assert answer["In-Reply-To"] == "<m1@example.com>"
        assert answer["References"] == "<m1@example.com>"
        assert answer["Auto-Submitted"] is None
        answer_id = str(answer["Message-ID"])
        assert answer_id.startswith("<") and answer_id.endswith("@acme.example>")
        assert answer.get_content_type() == "multipart/mixed"
        body = answer.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage)
        assert body.get_content().strip() == "Hi Alice, it ships today."
        [png] = list(answer.iter_attachments())
        assert (png.get_filename(), png.get_content_type()) == ("logo.png", "image/png")
        assert png.get_payload(decode=True) == b"\x89PNG logo"
        served = gw.gateway.directory.lookup("acme", "mail")
        assert served is not None
        assert gw.gateway.sent.message_for("acme", "mail", answer_id) is not None

        # Alice replies in the thread with an HTML-only mail: same conversation, readable text
        reply = mail(
            sender="alice@example.com",
            subject="Re: Order 42",
            message_id="<m2@example.com>",
            in_reply_to=answer_id,
            references=f"<m1@example.com> {answer_id}",
            html="<html><body><p>Thanks, <b>great</b>!</p><ul><li>one box</li></ul>"
            "<p>On Mon, Acme Support wrote:</p><blockquote>Hi Alice, it ships today."
            "</blockquote></body></html>",
        )
        assert await submit(provider.port, reply) == 250
        texts = await eventually(
            lambda: _when(customer_texts(the_core, conversation), lambda t: len(t) == 2)
        )
        assert texts[1].startswith("Thanks, great!")
        assert "* one box" in texts[1] and "<" not in texts[1] and "ships" not in texts[1]

        # a colleague answering the agent's mail (another address) joins the same conversation
        colleague = mail(
            "Bob here, I am in copy.\n\nOn Mon, 1 Jan 2024 at 10:00, Acme Support <\n"
            "support@acme.example> wrote:\n> Hi Alice, it ships today.\n",
            sender="Bob <bob@example.com>",
            subject="Re: Order 42",
            message_id="<m3@example.com>",
            in_reply_to=answer_id,
            references=f"<m1@example.com> {answer_id}",
        )
        assert await submit(provider.port, colleague, sender="bob@example.com") == 250
        assert (await customer_texts(the_core, conversation))[2] == "Bob here, I am in copy."
        assert await the_core.conversation_count() == 1

        # the next answer replies to the customer's latest mail
        await the_core.reply(conversation, "Noted, Bob.")
        later = await eventually(lambda: fake.answer("Noted, Bob."))
        assert later["In-Reply-To"] == "<m3@example.com>"
        assert later["References"] == f"<m1@example.com> {answer_id} <m3@example.com>"
        assert later["Subject"] == "Re: Order 42"
        assert later["Message-ID"] != answer_id

        # a file the gateway cannot get does not swallow the answer: the mail says so
        lost = conversation_pb2.Attachment(
            sha256="2" * 64, name="label.pdf", content_type="application/pdf", size=10
        )
        await the_core.reply(conversation, "Here is the label.", attachments=[lost])
        noted = await eventually(lambda: fake.answer("Here is the label."))
        assert list(noted.iter_attachments()) == []
        noted_body = noted.get_body(preferencelist=("plain",))
        assert isinstance(noted_body, EmailMessage)
        assert "[label.pdf could not be attached]" in noted_body.get_content()
    await events.aclose()


async def _when(texts: Any, ready: Any) -> Any:
    value = await texts
    return value if ready(value) else None


async def test_refusals_store_nothing(the_core: Core, tmp_path: Path) -> None:
    provider = Email(host="127.0.0.1", port=free_port(), max_message_bytes=20_000)
    async with (
        relay() as fake,
        gateway(
            the_core,
            provider,
            tmp_path,
            channel_id="mail",
            channel=channel(fake.port),
            max_attachment_bytes=5_000,
        ),
    ):
        port = provider.port
        # unknown recipient: 550 at RCPT TO
        assert await submit(port, mail("hi"), rcpt="sales@acme.example") == 550
        # over the size limit: 552 after DATA, or at MAIL FROM when SIZE says so up front
        huge = mail(("x" * 70 + "\n") * 400, message_id="<big@example.com>")
        assert await submit(port, huge) == 552
        assert await submit(port, huge, size=len(huge)) == 552
        # an attachment over max_attachment_bytes in a mail under the size limit: 552
        heavy = mail("see file", files=(("a.bin", "application/octet-stream", b"\0" * 6_000),))
        assert await submit(port, heavy) == 552
        # malformed: no usable From, or no headers at all: 554
        assert await submit(port, mail("hi", sender="nobody")) == 554
        assert await submit(port, b"just some bytes, no headers") == 554
        # automatic mail (an auto-reply, a bounce) is taken but never stored or answered
        auto = mail("I am out of office", headers=(("Auto-Submitted", "auto-replied"),))
        assert await submit(port, auto) == 250
        assert await submit(port, mail("Delivery failed"), sender="") == 250
    assert await the_core.conversation_count() == 0
    assert await the_core.message_count() == 0
    assert fake.received == []


async def test_allow_list_refuses_other_peers(the_core: Core, tmp_path: Path) -> None:
    provider = Email(host="127.0.0.1", port=free_port(), allow_from=["10.0.0.0/8"])
    async with (
        relay() as fake,
        gateway(the_core, provider, tmp_path, channel_id="mail", channel=channel(fake.port)),
    ):
        assert await submit(provider.port, mail("hi")) == 550
    assert await the_core.conversation_count() == 0
    assert await the_core.message_count() == 0


async def test_outbound_files_by_uri_within_limits(the_core: Core, tmp_path: Path) -> None:
    """Files not in the local store come from their ``uri``, checked by size and SHA-256."""
    provider = Email(host="127.0.0.1", port=free_port())
    async with (
        relay() as fake,
        gateway(
            the_core,
            provider,
            tmp_path,
            channel_id="mail",
            channel=channel(fake.port),
            max_attachment_bytes=100,
        ) as gw,
    ):
        blobs = gw.gateway.blobs
        small = blobs.put(b"remote bytes", content_type="text/plain", name="n.txt")
        remote = conversation_pb2.Attachment(
            name="n.txt", content_type="text/plain", uri=blobs.url(small.sha256)
        )
        fetched = await fetch(gw.gateway, remote)
        assert (fetched.name, fetched.content_type, fetched.data) == (
            "n.txt",
            "text/plain",
            b"remote bytes",
        )
        wrong = conversation_pb2.Attachment(name="n.txt", sha256="0" * 64, uri=remote.uri)
        with pytest.raises(DeliveryError) as mismatch:
            await fetch(gw.gateway, wrong)
        assert not mismatch.value.transient
        # over the limit although the store holds it: BlobStore writes unchecked here
        big = blobs.put(b"y" * 100, content_type="text/plain")
        big_path = blobs.get(big.sha256)
        assert big_path is not None
        big_path[0].write_bytes(b"y" * 200)
        too_big = conversation_pb2.Attachment(name="big.txt", uri=blobs.url(big.sha256))
        with pytest.raises(DeliveryError) as over:
            await fetch(gw.gateway, too_big)
        assert not over.value.transient
        gone = conversation_pb2.Attachment(name="gone.txt", uri=blobs.url("1" * 64))
        with pytest.raises(DeliveryError) as missing:
            await fetch(gw.gateway, gone)
        assert not missing.value.transient


async def test_choices_are_numbered_and_the_reply_first_line_picks(
    the_core: Core, tmp_path: Path
) -> None:
    provider = Email(host="127.0.0.1", port=free_port())
    events = the_core.agent.events()
    async with (
        relay() as fake,
        gateway(the_core, provider, tmp_path, channel_id="mail", channel=channel(fake.port)),
    ):
        assert await submit(provider.port, mail("Hello")) == 250
        conversation = await the_core.accept_next(events)
        choices = conversation_pb2.MessageChoices(
            header="Your order",
            options=[
                conversation_pb2.MessageOption(id="refund", title="Refund"),
                conversation_pb2.MessageOption(id="delivery", title="Delivery"),
            ],
        )
        await the_core.reply(conversation, "What is it about?", choices=choices)
        answer = await eventually(lambda: fake.answer("What is it about?"))
        body = answer.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage)
        assert body.get_content().replace("\r\n", "\n").strip() == (
            "Your order\n\nWhat is it about?\n\n1. Refund\n2. Delivery"
        )
        reply = mail(
            "2\n\nSent from my phone\n\nOn Monday, Acme Support wrote:\n> What is it about?",
            sender="alice@example.com",
            subject="Re: Order 42",
            message_id="<m2@example.com>",
            in_reply_to=str(answer["Message-ID"]),
        )
        assert await submit(provider.port, reply) == 250
        titled = mail(
            "delivery",
            sender="alice@example.com",
            subject="Re: Order 42",
            message_id="<m3@example.com>",
            in_reply_to=str(answer["Message-ID"]),
        )
        assert await submit(provider.port, titled) == 250
        said = [
            m.selected_option_id
            for m in await the_core.transcript(conversation)
            if m.sender == conversation_pb2.SENDER_CUSTOMER
        ]
        assert said == ["", "delivery", "delivery"]
    await events.aclose()
