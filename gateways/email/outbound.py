"""Agents' messages out as e-mail: the reply composed in the customer's thread, its files
fetched within the limits, and the SMTP submission (smtplib, in a worker thread).

SMTP answers map to ``DeliveryError``: 4xx and lost connections are transient (retried),
5xx are permanent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import httpx
from usher.v1 import conversation_pb2

from gateways.common.blobs import TooLarge
from gateways.common.directory import ChannelConfig
from gateways.common.fetch import read_limited
from gateways.common.gateway import Gateway
from gateways.common.provider import DeliveryError
from gateways.email.mail import File, topic
from gateways.email.threads import Thread

MAX_REFERENCES = 20
"""Long threads keep the first and the latest ids in ``References`` (RFC 5322 3.6.4 allows)."""


def message_id(tenant: str, channel: str, key: str, address: str) -> str:
    """A Message-ID stable for one outbound item, so a retried send is the same mail."""
    digest = hashlib.sha256(f"{tenant}/{channel}/{key}".encode()).hexdigest()[:40]
    return f"<{digest}@{address.rpartition('@')[2] or 'usher.invalid'}>"


@dataclass(frozen=True, slots=True)
class Reply:
    """What the customer gets: ``text`` and ``files`` in the thread ``thread`` (if known)."""

    sender: str
    sender_name: str
    recipient: str
    message_id: str
    text: str
    files: Sequence[File] = ()
    thread: Thread | None = None
    default_subject: str = ""
    automatic: bool = False
    time: dt.datetime | None = None

    def compose(self) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = formataddr((self.sender_name, self.sender))
        mail["To"] = self.recipient
        subject = topic(self.thread.subject) if self.thread else ""
        mail["Subject"] = f"Re: {subject}" if subject else self.default_subject
        mail["Message-ID"] = self.message_id
        mail["Date"] = format_datetime(self.time or dt.datetime.now(dt.UTC))
        if self.thread is not None:
            references = self.thread.reply_references
            if len(references) > MAX_REFERENCES:
                references = (references[0], *references[-(MAX_REFERENCES - 1) :])
            mail["In-Reply-To"] = self.thread.message_id
            mail["References"] = " ".join(references)
        if self.automatic:
            mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: autoresponders stay quiet
        mail.set_content(self.text)
        for f in self.files:
            maintype, _, subtype = f.content_type.partition("/")
            if not subtype:
                maintype, subtype = "application", "octet-stream"
            mail.add_attachment(f.data, maintype=maintype, subtype=subtype, filename=f.name)
        return mail


async def fetch(gateway: Gateway, attachment: conversation_pb2.Attachment) -> File:
    """The attachment's bytes: from the local store when its SHA-256 is there, else from its
    ``uri`` (http/https), at most ``max_attachment_bytes``, checked against its SHA-256."""
    limit = gateway.settings.max_attachment_bytes
    if attachment.size > limit:
        raise DeliveryError(
            f"attachment {attachment.name!r} is over {limit} bytes", transient=False
        )
    data = gateway.blobs.read(attachment.sha256) if attachment.sha256 else None
    if data is None:
        data = await _download(gateway.http, attachment.uri, limit)
        if attachment.sha256 and hashlib.sha256(data).hexdigest() != attachment.sha256:
            raise DeliveryError(f"{attachment.uri} does not match its sha256", transient=False)
    return File(
        attachment.name or "attachment", attachment.content_type or "application/octet-stream", data
    )


async def _download(http: httpx.AsyncClient, uri: str, limit: int) -> bytes:
    if not uri.startswith(("http://", "https://")):
        raise DeliveryError(f"cannot fetch attachment {uri!r}", transient=False)
    try:
        async with http.stream("GET", uri) as response:
            if not response.is_success:
                code = response.status_code
                raise DeliveryError(
                    f"GET {uri} answered {code}", transient=code in (408, 429) or code >= 500
                )
            return await read_limited(response, limit)
    except TooLarge as exc:
        raise DeliveryError(f"{uri}: {exc}", transient=False) from exc
    except httpx.TransportError as exc:
        raise DeliveryError(f"GET {uri} failed: {exc}", transient=True) from exc


@dataclass(frozen=True, slots=True)
class Relay:
    """The SMTP server a channel submits through (its settings and secrets)."""

    host: str
    port: int
    starttls: bool
    implicit_tls: bool
    username: str
    password: str
    timeout: float = 30.0

    @classmethod
    def of(cls, channel: ChannelConfig) -> Relay:
        implicit = _flag(channel.setting("smtp_ssl", "false"))
        username = channel.secrets.get("smtp_username", "")
        return cls(
            host=channel.setting("smtp_host"),
            port=int(channel.setting("smtp_port", "465" if implicit else "587")),
            starttls=not implicit and _flag(channel.setting("smtp_starttls", "true")),
            implicit_tls=implicit,
            username=username,
            password=channel.secret("smtp_password") if username else "",
        )

    async def send(self, mail: EmailMessage, sender: str, recipient: str) -> None:
        """Submit ``mail`` from ``sender`` (the envelope's return path) to ``recipient``."""
        try:
            await asyncio.to_thread(self._send, mail, sender, recipient)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"recipient refused: {exc.recipients}", transient=all(400 <= c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", transient=400 <= exc.smtp_code < 500
            ) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {exc}", transient=True) from exc
        except smtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH not offered
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {exc}", transient=False) from exc

    def _send(self, mail: EmailMessage, sender: str, recipient: str) -> None:
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            if self.implicit_tls
            else smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        )
        with smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(mail, from_addr=sender, to_addrs=[recipient])


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")
