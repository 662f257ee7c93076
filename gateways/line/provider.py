"""The LINE provider: the signed webhook in, replies and pushes out.

Inbound events are stored under their ``webhookEventId``, so a redelivered event (LINE sets
``deliveryContext.isRedelivery``) finds its message already stored and changes nothing. The
webhook answers 200 only after every event in the body is stored.

Outbound messages use the customer's latest reply token while it is fresh (free, single-use,
valid for about a minute) and the push API otherwise, with an ``X-Line-Retry-Key`` derived
from the outbound event so a retried push is not sent twice.

A follow (the customer added the account) is not a message and starts no conversation: the
channel's ``welcome_text``, when set, answers it through the follow's reply token.

Broadcasts (``gateways.common.broadcasts``) are pushes whose ``X-Line-Retry-Key`` derives from
the send's key, so a send whose outcome a crash hid is simply pushed again: LINE answers 409 to
a key it already took (within 24 hours), and nothing reaches the user twice.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from usher.v1 import channel_pb2, conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.blobs import TooLarge
from gateways.common.directory import MissingSetting, Served
from gateways.common.gateway import Gateway
from gateways.common.inbox import Customer, Inbound
from gateways.common.provider import BroadcastMessage, DeliveryError, Provider
from gateways.common.signatures import hmac_sha256_base64, same
from gateways.line.api import LineApi, ReplyRefused
from gateways.line.events import Event, Malformed, parse
from gateways.line.render import (
    batches,
    inbound_text,
    is_media,
    lists_options,
    media_name,
    outbound,
    picked_option,
)
from gateways.line.replytokens import ReplyTokens

log = structlog.get_logger(__name__)

REPLY_TOKEN_SECONDS = 50.0
"""Use a reply token only this long after it arrived: LINE guarantees about a minute."""
LOADING_SECONDS = 10
"""An agent's typing shows LINE's loading animation this long (typing lasts 10 s)."""
PROFILE_TIMEOUT = 3.0


def _retry_key(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "usher:line:" + "/".join(map(str, parts))))


class _Recent:
    """A bounded memory of strings seen (names by user, follow events welcomed)."""

    def __init__(self, size: int = 50_000) -> None:
        self._items: OrderedDict[Any, str] = OrderedDict()
        self._size = size

    def get(self, key: Any) -> str | None:
        return self._items.get(key)

    def put(self, key: Any, value: str) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class Line(Provider):
    name: ClassVar[str] = "line"
    channel_type = channel_pb2.CHANNEL_TYPE_LINE
    broadcast_rate: ClassVar[float] = 100.0
    """Well under the push API's 2,000 requests a second."""

    def __init__(self) -> None:
        self.tokens = ReplyTokens()
        self._names = _Recent()
        self._welcomed = _Recent()

    async def send_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str:
        """One push; a retry, or a resend after a crash, under the same retry key is harmless
        (the default reconciliation, None, resends)."""
        key = _retry_key(served.tenant, served.channel.channel_id, "broadcast", message.key)
        try:
            api = LineApi(gateway.http, served.channel)
            ids = await api.push(
                message.address, [{"type": "text", "text": message.text}], retry_key=key
            )
        except MissingSetting as exc:
            raise DeliveryError(str(exc), transient=False) from None
        return ids[0] if ids else key

    def routes(self, gateway: Gateway) -> Sequence[BaseRoute]:
        async def webhook(request: Request) -> Response:
            served = gateway.served(request)
            body = await gateway.body(request)
            try:
                secret = served.channel.secret("channel_secret")
            except MissingSetting as exc:
                raise HTTPException(503, str(exc)) from None
            expected = hmac_sha256_base64(secret, body)
            if not same(expected, request.headers.get("x-line-signature")):
                raise HTTPException(401, "bad or missing x-line-signature")
            try:
                events = parse(body)
            except Malformed as exc:
                raise HTTPException(400, str(exc)) from None
            for event in events:
                await self._handle(gateway, served, event)
            return Response(status_code=200)

        return [Route("/{tenant}/{channel}/webhook", webhook, methods=["POST"])]

    async def _handle(self, gateway: Gateway, served: Served, event: Event) -> None:
        key = (served.tenant, served.channel.channel_id, event.user_id)
        # a redelivered event's reply token is long past its minute
        token = "" if event.redelivery else event.reply_token
        if event.kind == "unfollow":
            self.tokens.forget(key)
            log.info("line user unfollowed", tenant=served.tenant, user=event.user_id)
        elif event.kind == "follow":
            await self._welcome(gateway, served, event, token)
        else:
            if token:
                self.tokens.keep(key, token)
            text, attachments = await self._content(gateway, served, event)
            option = picked_option(event.postback_data) if event.kind == "postback" else None
            if option is not None:  # a quick reply tapped: the chat showed its title
                offer = gateway.offers.last(served.tenant, served.channel.channel_id, event.user_id)
                found = offer.option(option) if offer is not None else None
                text = found.title if found is not None else option
            customer = Customer(event.user_id, name=await self._name(gateway, served, event))
            await gateway.inbox.post(
                served,
                customer,
                Inbound(
                    event.event_id,
                    text=text,
                    attachments=attachments,
                    sent_at=event.sent_at,
                    selected_option_id=option or "",
                ),
            )

    async def _content(
        self, gateway: Gateway, served: Served, event: Event
    ) -> tuple[str, list[conversation_pb2.Attachment]]:
        if event.kind == "postback":
            return event.postback_data, []
        message = event.message
        if not is_media(message):
            return inbound_text(message), []
        kind = message["type"]
        try:
            data, content_type = await LineApi(gateway.http, served.channel).content(
                message["id"], max_bytes=gateway.blobs.max_bytes
            )
        except TooLarge:
            return f"[{kind} over the {gateway.blobs.max_bytes}-byte limit, not kept]", []
        except (DeliveryError, httpx.HTTPError) as exc:
            # keep the message: the agent can ask again, a lost message cannot be asked about
            log.warning("line content not fetched", message=message["id"], error=str(exc))
            return f"[{kind} could not be fetched from LINE]", []
        blob = gateway.blobs.put(
            data, content_type=content_type, name=media_name(message, content_type)
        )
        return "", [gateway.blobs.attachment(blob)]

    async def _name(self, gateway: Gateway, served: Served, event: Event) -> str:
        """The user's LINE display name, remembered; "" when the profile is unavailable."""
        key = (served.tenant, served.channel.channel_id, event.user_id)
        known = self._names.get(key)
        if known is not None:
            return known
        api = LineApi(gateway.http, served.channel)
        try:
            name = await api.display_name(event.user_id, timeout=PROFILE_TIMEOUT)
        except (DeliveryError, httpx.HTTPError) as exc:
            log.info("line profile unavailable", user=event.user_id, error=str(exc))
            if isinstance(exc, DeliveryError) and not exc.transient:
                self._names.put(key, "")  # LINE said no (e.g. not a friend): do not ask again
            return ""
        self._names.put(key, name)
        return name

    async def _welcome(self, gateway: Gateway, served: Served, event: Event, token: str) -> None:
        text = served.channel.settings.get("welcome_text", "")
        if not text or self._welcomed.get(event.event_id) is not None:
            return
        self._welcomed.put(event.event_id, "")
        api = LineApi(gateway.http, served.channel)
        try:
            if token:
                try:
                    await api.reply(token, outbound(text))
                    return
                except ReplyRefused:
                    pass
            key = _retry_key(served.tenant, served.channel.channel_id, "welcome", event.event_id)
            await api.push(event.user_id, outbound(text), retry_key=key)
        except (DeliveryError, httpx.HTTPError) as exc:
            log.warning("line welcome not sent", user=event.user_id, error=str(exc))

    async def deliver(self, gateway: Gateway, served: Served, item: pb.OutboundItem) -> None:
        kind = item.WhichOneof("item")
        api = LineApi(gateway.http, served.channel)
        if kind == "typing":
            if item.typing.active and item.typing.agent:
                try:
                    await api.show_loading(item.external_id, LOADING_SECONDS)
                except (DeliveryError, httpx.HTTPError) as exc:  # a lost animation is harmless
                    log.info("line loading animation failed", error=str(exc))
            return
        if kind == "message":
            choices = item.message.choices if item.message.HasField("choices") else None
            messages = outbound(
                item.message.text,
                item.message.attachments,
                lambda a: a.uri or gateway.blobs.url(a.sha256),  # the core keeps no uri
                choices,
            )
            listed = choices is not None and lists_options(choices)
            gateway.offers.note(served.tenant, served.channel.channel_id, item, numbered=listed)
        elif kind == "system_message":
            messages = outbound(item.system_message.text)
        else:  # state changes and receipts have nothing to show on LINE
            gateway.offers.note(served.tenant, served.channel.channel_id, item, numbered=False)
            return
        sent = await self._send(api, served, item, messages)
        if kind == "message":
            for provider_id in sent:
                gateway.sent.remember(
                    served.tenant, served.channel.channel_id, provider_id, item.message.name
                )

    async def _send(
        self, api: LineApi, served: Served, item: pb.OutboundItem, messages: list[dict[str, Any]]
    ) -> list[str]:
        """Send in batches of five: the first by reply while a fresh token is kept, the rest
        (or all) by push; the ids LINE gave the sent messages."""
        key = (served.tenant, served.channel.channel_id, item.external_id)
        try:
            fresh_for = float(served.channel.setting("reply_token_seconds", "50"))
        except ValueError:
            fresh_for = REPLY_TOKEN_SECONDS
        sent: list[str] = []
        for index, batch in enumerate(batches(messages)):
            token = self.tokens.take(key, fresh_for) if index == 0 else None
            if token is not None:
                try:
                    sent += await api.reply(token, batch)
                    continue
                except ReplyRefused as exc:
                    log.info("line reply token refused; pushing", error=str(exc))
            retry_key = _retry_key(served.tenant, served.channel.channel_id, item.event_id, index)
            sent += await api.push(item.external_id, batch, retry_key=retry_key)
        return sent
