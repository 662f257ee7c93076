"""The Twilio SMS provider: signed webhooks in (messages and delivery statuses), messages out
through the Messages resource.

An inbound message is stored under its ``MessageSid`` (Twilio repeating a webhook changes
nothing) and answered with empty TwiML only after the core stored it. Media are fetched with
the account's credentials and kept by the gateway; a file that cannot be fetched or is too
large leaves a note in the text rather than losing the message.

Outbound text goes in 1600-character messages (Twilio's limit) with the attachments as
``MediaUrl`` on the last (MMS), or as links when the channel says ``media_as_links``. Each
message asks for status callbacks; delivered and read become receipts, failures are logged.
A message's choices are numbered lines under its text ("1. Refund"); the customer answers with
a number or a title, which the inbox maps back to the option (``gateways.common.choices``).

Broadcasts (``gateways.common.broadcasts``) go out the same way, each with a status callback;
the statuses of a message the sent log does not know are passed to the core as a broadcast's.
Twilio takes no idempotency key, so a send whose outcome a crash hid is looked for among the
latest messages to the number (same body, created since the send was first claimed) before it
is sent again.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import mimetypes
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from usher.v1 import channel_pb2, conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.blobs import TooLarge
from gateways.common.broadcasts import report_status
from gateways.common.choices import numbered_text
from gateways.common.directory import MissingSetting, Served
from gateways.common.gateway import Gateway
from gateways.common.inbox import Customer, Inbound
from gateways.common.phones import InvalidPhone, to_e164
from gateways.common.provider import BroadcastMessage, DeliveryError, Provider
from gateways.sms.api import TwilioApi
from gateways.sms.signature import candidate_urls, verify

log = structlog.get_logger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
BODY_LIMIT = 1600
MAX_MEDIA = 10
"""Twilio takes at most ten MediaUrl per message and sends at most ten per inbound MMS."""
RECEIPTS = frozenset({"delivered", "read"})
FAILURES = frozenset({"failed", "undelivered"})
CLOCK_SKEW = dt.timedelta(minutes=2)
"""How far Twilio's clock may be behind the core's when a sent message is looked for."""


def _pieces(text: str) -> list[str]:
    return [text[i : i + BODY_LIMIT] for i in range(0, len(text), BODY_LIMIT)]


def plan(text: str, media_urls: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The messages to send as (body, media URLs): the text in 1600-character pieces, the
    media on the last piece, ten per message."""
    pieces: list[tuple[str, list[str]]] = [(p, []) for p in _pieces(text.strip())]
    for start in range(0, len(media_urls), MAX_MEDIA):
        batch = list(media_urls[start : start + MAX_MEDIA])
        if pieces and not pieces[-1][1]:
            pieces[-1] = (pieces[-1][0], batch)
        else:
            pieces.append(("", batch))
    return pieces


class TwilioSms(Provider):
    name: ClassVar[str] = "sms"
    channel_type = channel_pb2.CHANNEL_TYPE_SMS
    broadcast_rate: ClassVar[float] = 10.0
    """Twilio queues what a number cannot send at once (a long code: 1 a second); a messaging
    service or short code sends faster: set the channel's ``broadcast_rate``."""

    def __init__(self) -> None:
        self._progress: OrderedDict[tuple[str, str, int], int] = OrderedDict()
        """Messages already sent for an outbound item cut in several, so a retry resumes."""

    def routes(self, gateway: Gateway) -> Sequence[BaseRoute]:
        async def inbound(request: Request) -> Response:
            served = gateway.served(request)
            form = await self._verified(gateway, served, request)
            sid, sender = form.get("MessageSid", ""), form.get("From", "")
            if not sid or not sender:
                raise HTTPException(400, "MessageSid and From are required")
            try:
                phone = to_e164(sender, served.channel.settings.get("default_region") or None)
            except InvalidPhone as exc:
                raise HTTPException(400, str(exc)) from None
            text, attachments = await self._content(gateway, served, form)
            await gateway.inbox.post(
                served,
                Customer(phone, phone=phone),
                Inbound(sid, text=text, attachments=attachments),
            )
            return Response(EMPTY_TWIML, media_type="text/xml")

        async def status(request: Request) -> Response:
            served = gateway.served(request)
            form = await self._verified(gateway, served, request)
            sid, state = form.get("MessageSid", ""), form.get("MessageStatus", "")
            if not sid or not state:
                raise HTTPException(400, "MessageSid and MessageStatus are required")
            ours = gateway.sent.message_for(served.tenant, served.channel.channel_id, sid)
            if ours is None and (state in RECEIPTS or state in FAILURES):  # a broadcast's?
                error = form.get("ErrorCode", "")
                await report_status(
                    served,
                    sid,
                    "failed" if state in FAILURES else state,
                    error=f"Twilio {state}" + (f" (error {error})" if error else ""),
                )
            elif state in RECEIPTS:
                await gateway.receipt(served, sid, state)
            elif state in FAILURES:
                log.warning(
                    "sms not delivered",
                    tenant=served.tenant,
                    channel=served.channel.channel_id,
                    sid=sid,
                    status=state,
                    error_code=form.get("ErrorCode", ""),
                    message=gateway.sent.message_for(served.tenant, served.channel.channel_id, sid),
                )
            return Response(status_code=200)

        return [
            Route("/{tenant}/{channel}/sms", inbound, methods=["POST"]),
            Route("/{tenant}/{channel}/status", status, methods=["POST"]),
        ]

    async def _verified(self, gateway: Gateway, served: Served, request: Request) -> dict[str, str]:
        """The POST parameters once the signature holds; 401 when it does not, 400 when the
        body is not form data."""
        body = await gateway.body(request)
        try:
            params = parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(400, "the body is not form data") from None
        try:
            token = served.channel.secret("auth_token")
        except MissingSetting as exc:
            raise HTTPException(503, str(exc)) from None
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        urls = candidate_urls(gateway.settings.public_url, path, str(request.url))
        if not verify(token, request.headers.get("x-twilio-signature"), urls, params):
            raise HTTPException(401, "bad or missing X-Twilio-Signature")
        return dict(params)

    async def _content(
        self, gateway: Gateway, served: Served, form: dict[str, str]
    ) -> tuple[str, list[conversation_pb2.Attachment]]:
        text = form.get("Body", "")
        count = form.get("NumMedia", "0") or "0"
        if not count.isdigit():
            raise HTTPException(400, "NumMedia is not a number")
        notes: list[str] = []
        attachments: list[conversation_pb2.Attachment] = []
        api = TwilioApi(gateway.http, served.channel)
        for i in range(min(int(count), MAX_MEDIA)):
            url, declared = form.get(f"MediaUrl{i}"), form.get(f"MediaContentType{i}", "")
            if not url:
                raise HTTPException(400, f"MediaUrl{i} is missing")
            try:
                data, content_type = await api.media(url, max_bytes=gateway.blobs.max_bytes)
            except TooLarge:
                notes.append(f"[{declared or 'a file'} over the size limit, not kept]")
                continue
            except (DeliveryError, httpx.HTTPError) as exc:
                log.warning("sms media not fetched", url=url, error=str(exc))
                notes.append(f"[{declared or 'a file'} could not be fetched]")
                continue
            content_type = declared or content_type
            name = f"{form['MessageSid']}-{i}{mimetypes.guess_extension(content_type) or ''}"
            blob = gateway.blobs.put(data, content_type=content_type, name=name)
            attachments.append(gateway.blobs.attachment(blob))
        return "\n".join([text, *notes]).strip(), attachments

    async def deliver(self, gateway: Gateway, served: Served, item: pb.OutboundItem) -> None:
        kind = item.WhichOneof("item")
        tenant, channel = served.tenant, served.channel.channel_id
        if kind == "message":
            text, attachments = item.message.text, list(item.message.attachments)
            if item.message.HasField("choices"):
                text = numbered_text(text, item.message.choices)
            gateway.offers.note(tenant, channel, item, numbered=True)
        elif kind == "system_message":
            text, attachments = item.system_message.text, []
        else:  # SMS cannot show typing, receipts or state changes
            gateway.offers.note(tenant, channel, item, numbered=True)
            return
        links = [a.uri or gateway.blobs.url(a.sha256) for a in attachments]  # core keeps no uri
        if served.channel.settings.get("media_as_links", "").lower() in ("1", "true", "yes"):
            text = "\n".join(
                [text, *(f"{a.name}: {u}" for a, u in zip(attachments, links, strict=True))]
            )
            links = []
        pieces = plan(text, links)
        key = (served.tenant, served.channel.channel_id, item.event_id)
        callback = f"{gateway.settings.base_url}/{served.tenant}/{served.channel.channel_id}/status"
        api = TwilioApi(gateway.http, served.channel)
        for index in range(self._progress.get(key, 0), len(pieces)):
            body, media = pieces[index]
            sid = await api.send(item.external_id, body, media, callback)
            self._note_progress(key, index + 1)
            if kind == "message":
                gateway.sent.remember(
                    served.tenant, served.channel.channel_id, sid, item.message.name
                )
        self._progress.pop(key, None)

    def _note_progress(self, key: tuple[str, str, int], done: int) -> None:
        self._progress[key] = done
        while len(self._progress) > 10_000:
            self._progress.popitem(last=False)

    # -- broadcasts --------------------------------------------------------------------------

    @staticmethod
    def _callback(gateway: Gateway, served: Served) -> str:
        return f"{gateway.settings.base_url}/{served.tenant}/{served.channel.channel_id}/status"

    async def send_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str:
        """The text in 1600-character messages; the first one's SID names the send."""
        try:
            api = TwilioApi(gateway.http, served.channel)
        except MissingSetting as exc:
            raise DeliveryError(str(exc), transient=False) from None
        sids = [
            await api.send(message.address, body, [], self._callback(gateway, served))
            for body, _ in plan(message.text, [])
        ]
        return sids[0]

    async def reconcile_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str | None:
        """The SID of a message to the address with the send's (first) text, created since the
        send was first claimed; None when Twilio has none (it was never created)."""
        api = TwilioApi(gateway.http, served.channel)
        body = plan(message.text, [])[0][0]
        since = (message.first_claim_time or dt.datetime.now(dt.UTC)) - CLOCK_SKEW
        for found in await api.recent(message.address):
            if found.get("body") == body and _created(found) >= since:
                sid = found.get("sid")
                if isinstance(sid, str) and sid:
                    return sid
        return None


def _created(found: dict[str, Any]) -> dt.datetime:
    """A listed message's ``date_created`` (RFC 2822, as Twilio writes it); long ago if none."""
    try:
        return email.utils.parsedate_to_datetime(str(found.get("date_created")))
    except (TypeError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.UTC)
