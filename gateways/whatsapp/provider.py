"""The WhatsApp Cloud API provider: the webhook (Meta's verification handshake on GET, signed
notifications on POST) and delivery through ``POST /{phone_number_id}/messages``.

A notification may carry several entries, changes and messages: all are stored, in order,
before the 200 that tells Meta to stop redelivering. Outside the 24-hour customer service
window agent and bot messages go out as the channel's template (see docs/gateways/whatsapp.md).

Broadcasts are templates (``gateways.common.broadcasts``), each carrying its key as
``biz_opaque_callback_data``: the statuses Meta sends back name the send, so the core learns a
broadcast message went out even when the gateway died before reporting it. The Cloud API has no
idempotency key and no way to look a message up, so a send whose outcome a crash hid is held
until ``broadcast_status_grace`` seconds (default 60) after it was first claimed, time for its
status to arrive; then, if the core still has it unsent, it is sent again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

import httpx
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from usher.client import UsherError
from usher.v1 import channel_pb2, conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.broadcasts import report_status
from gateways.common.directory import MissingSetting, Served
from gateways.common.gateway import Gateway
from gateways.common.inbox import Customer
from gateways.common.phones import InvalidPhone, to_e164
from gateways.common.provider import BroadcastMessage, DeliveryError, Hold, Provider
from gateways.common.signatures import hmac_sha256_hex, same
from gateways.whatsapp import compose
from gateways.whatsapp.graph import Graph, MediaError
from gateways.whatsapp.inbound import to_inbound
from gateways.whatsapp.state import State
from gateways.whatsapp.webhook import Change, Malformed, parse

log = structlog.get_logger(__name__)

STATUS_GRACE = 60.0
"""Seconds after a broadcast send was first claimed by which Meta's status for it has come."""
RECEIPT_STATUSES = ("delivered", "read")
"""Statuses passed on as receipts. ``sent`` only means Meta accepted the message, which the
API's answer already said; ``failed`` is logged."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WhatsApp(Provider):
    name: ClassVar[str] = "whatsapp"
    channel_type = channel_pb2.CHANNEL_TYPE_WHATSAPP
    broadcast_rate: ClassVar[float] = 50.0
    """Meta's per-number throughput starts at 80 messages a second."""

    def __init__(self, *, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self._clock = clock
        self._state: State | None = None
        self.unsent_outside_window = 0
        """Messages not sent: outside the window, with a template already awaiting an answer."""

    def state(self, gateway: Gateway) -> State:
        """The gateway's WhatsApp state, opened on first use (delivery may start first)."""
        if self._state is None:
            self._state = State(gateway.settings.data_dir / "whatsapp.sqlite3", now=self._clock())
        return self._state

    async def stop(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None

    def routes(self, gateway: Gateway) -> Sequence[BaseRoute]:
        async def verify(request: Request) -> Response:
            return self._verify(gateway, request)

        async def notify(request: Request) -> Response:
            return await self._notify(gateway, request)

        return [
            Route("/{tenant}/{channel}/webhook", verify, methods=["GET"]),
            Route("/{tenant}/{channel}/webhook", notify, methods=["POST"]),
        ]

    # -- inbound ---------------------------------------------------------------------------

    def _verify(self, gateway: Gateway, request: Request) -> Response:
        """Meta's subscription handshake: echo ``hub.challenge`` when the token matches."""
        served = gateway.served(request)
        params = request.query_params
        try:
            expected = served.channel.secret("verify_token")
        except MissingSetting as exc:
            log.error("webhook verification refused", error=str(exc))
            raise HTTPException(403, "the channel has no verify_token") from None
        if params.get("hub.mode") != "subscribe" or not same(
            expected, params.get("hub.verify_token")
        ):
            raise HTTPException(403, "verification refused")
        return PlainTextResponse(params.get("hub.challenge", ""))

    async def _notify(self, gateway: Gateway, request: Request) -> Response:
        served = gateway.served(request)
        body = await gateway.body(request)
        try:
            secret = served.channel.secret("app_secret")
        except MissingSetting as exc:
            log.error("webhook refused", error=str(exc))
            raise HTTPException(403, "the channel has no app_secret") from None
        expected = "sha256=" + hmac_sha256_hex(secret, body)
        if not same(expected, request.headers.get("x-hub-signature-256")):
            raise HTTPException(401, "bad or missing X-Hub-Signature-256")
        try:
            changes = parse(body)
            senders = {m.sender: to_e164(m.sender) for c in changes for m in c.messages}
        except (Malformed, InvalidPhone) as exc:
            raise HTTPException(400, str(exc)) from None
        counts = {"stored": 0, "duplicates": 0, "skipped": 0, "receipts": 0}
        for change in changes:
            target = self._target(gateway, served, change.phone_number_id)
            if target is None:
                log.warning("notification for an unknown number", number=change.phone_number_id)
                continue
            await self._messages(gateway, target, change, senders, counts)
            await self._statuses(gateway, target, change, counts)
        return JSONResponse(counts)

    def _target(self, gateway: Gateway, served: Served, number: str) -> Served | None:
        """The tenant's channel for the business number: one Meta app may send every number's
        notifications to one callback URL."""
        if not number or number == served.channel.settings.get("phone_number_id", number):
            return served
        for other in gateway.directory:
            if (
                other.tenant == served.tenant
                and other.channel.settings.get("phone_number_id") == number
            ):
                return other
        return None

    async def _messages(
        self,
        gateway: Gateway,
        served: Served,
        change: Change,
        senders: dict[str, str],
        counts: dict[str, int],
    ) -> None:
        tenant, channel = served.tenant, served.channel.channel_id
        state = self.state(gateway)
        try:
            graph = Graph.of(gateway.http, served.channel)
        except MissingSetting as exc:
            log.error("webhook refused", error=str(exc))
            raise HTTPException(503, str(exc)) from None
        for message in change.messages:
            try:
                inbound = await to_inbound(message, graph, gateway.blobs)
            except MediaError as exc:  # transient: Meta redelivers, stored ones are no-ops
                raise HTTPException(503, f"media not fetched yet: {exc}") from None
            if inbound is None:
                counts["skipped"] += 1
                continue
            now = self._clock()
            phone = senders[message.sender]
            name = change.names.get(message.sender, "")
            # the window opens before the core answers: its welcome may go out at once
            state.customer_wrote(tenant, channel, phone, message.id, message.sent_at or now)
            try:
                posted = await gateway.inbox.post(
                    served, Customer(phone, name=name, phone=phone), inbound
                )
            except UsherError as exc:
                log.warning("message not stored", wamid=message.id, error=str(exc))
                raise HTTPException(503, "the core did not store the message") from None
            state.stored(tenant, channel, posted.message.name, message.id, now)
            counts["duplicates" if posted.duplicate else "stored"] += 1

    async def _statuses(
        self, gateway: Gateway, served: Served, change: Change, counts: dict[str, int]
    ) -> None:
        for status in change.statuses:
            tenant, channel = served.tenant, served.channel.channel_id
            if status.callback_data.startswith("broadcasts/") or (
                status.status in (*RECEIPT_STATUSES, "failed")
                and gateway.sent.message_for(tenant, channel, status.id) is None
            ):
                recipient = status.callback_data if "/recipients/" in status.callback_data else ""
                await report_status(
                    served,
                    status.id,
                    status.status,
                    error="; ".join(status.errors),
                    recipient=recipient,
                )
            elif status.status in RECEIPT_STATUSES:
                counts["receipts"] += await gateway.receipt(served, status.id, status.status)
            elif status.status == "failed":
                log.warning("WhatsApp could not deliver", wamid=status.id, errors=status.errors)

    # -- broadcasts --------------------------------------------------------------------------

    async def send_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str:
        try:
            graph = Graph.of(gateway.http, served.channel)
        except MissingSetting as exc:
            raise DeliveryError(str(exc), transient=False) from None
        to = message.address.removeprefix("+")
        payload = compose.broadcast_template(
            to, message.template_name, message.template_language, message.parameters, message.key
        )
        return await graph.send(payload) or message.key

    async def reconcile_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str | None:
        """``Hold`` until the grace after the first claim has passed (its status, which names
        the send, would have reached the core by then); then None: send it again."""
        grace = float(served.channel.settings.get("broadcast_status_grace") or STATUS_GRACE)
        first = message.first_claim_time
        if first is not None and (self._clock() - first).total_seconds() < grace:
            raise Hold(f"waiting {grace:.0f} s for Meta's status of {message.recipient}")
        return None

    # -- outbound --------------------------------------------------------------------------

    async def deliver(self, gateway: Gateway, served: Served, item: pb.OutboundItem) -> None:
        try:
            graph = Graph.of(gateway.http, served.channel)
        except MissingSetting as exc:
            raise DeliveryError(str(exc), transient=False) from None
        kind = item.WhichOneof("item")
        if kind == "state_change":  # a conversation that ends takes its choices with it
            gateway.offers.note(served.tenant, served.channel.channel_id, item, numbered=False)
        elif kind == "message":
            await self._send(gateway, served, graph, item)
        elif kind == "system_message" and item.system_message.text:
            if self._window_open(gateway, served, item.external_id):
                for payload in compose.text(_to(item), item.system_message.text):
                    await graph.send(payload)
            else:  # a template is for people's words, not notices
                log.info(
                    "system message outside the window not sent", kind=item.system_message.kind
                )
        elif kind == "receipt" and item.receipt.status == conversation_pb2.RECEIPT_STATUS_READ:
            wamid = self.state(gateway).wamid_of(
                served.tenant, served.channel.channel_id, item.receipt.message
            )
            if wamid:
                await _best_effort(graph.mark_read(wamid), "mark read")
        elif kind == "typing" and item.typing.active:
            wamid = self.state(gateway).last_wamid(
                served.tenant, served.channel.channel_id, item.external_id
            )
            if wamid and self._window_open(gateway, served, item.external_id):
                await _best_effort(graph.mark_read(wamid, typing=True), "typing indicator")

    def _window_open(self, gateway: Gateway, served: Served, customer: str) -> bool:
        return self.state(gateway).window_open(
            served.tenant, served.channel.channel_id, customer, self._clock()
        )

    async def _send(
        self, gateway: Gateway, served: Served, graph: Graph, item: pb.OutboundItem
    ) -> None:
        if not self._window_open(gateway, served, item.external_id):
            await self._send_template(gateway, served, graph, item)
            return
        channel = served.channel
        default = compose.Style()
        style = compose.Style(
            list_button=channel.setting("list_button", default.list_button),
            prompt=channel.setting("options_prompt", default.prompt),
        )

        def link(attachment: conversation_pb2.Attachment) -> str:
            # the core keeps an attachment's hash, not its URL: the gateway serves the bytes
            return attachment.uri or gateway.blobs.url(attachment.sha256)

        payloads = compose.message(_to(item), item.message, style, link)
        for payload in payloads:
            wamid = await graph.send(payload)
            if wamid:
                gateway.sent.remember(served.tenant, channel.channel_id, wamid, item.message.name)
        # choices WhatsApp could not show natively went out numbered: a typed number answers
        numbered = not any(p["type"] == "interactive" for p in payloads)
        gateway.offers.note(served.tenant, channel.channel_id, item, numbered=numbered)

    async def _send_template(
        self, gateway: Gateway, served: Served, graph: Graph, item: pb.OutboundItem
    ) -> None:
        """Outside the window: the channel's template, carrying the text when the template
        has a body variable for it (``template_parameter=text``), else once per silence."""
        channel, customer = served.channel, item.external_id
        name = channel.settings.get("template_name", "")
        if not name:
            raise DeliveryError(
                "outside the 24-hour window and the channel has no template_name", transient=False
            )
        state = self.state(gateway)
        with_text = channel.settings.get("template_parameter", "") == "text"
        if not with_text and state.template_pending(served.tenant, channel.channel_id, customer):
            self.unsent_outside_window += 1
            raise DeliveryError(
                "outside the 24-hour window; the template already sent awaits an answer",
                transient=False,
            )
        # a template cannot carry choices: none stands for the customer to answer
        gateway.offers.forget(served.tenant, channel.channel_id, customer)
        parameter = " ".join(item.message.text.split()) if with_text else None
        if with_text and not parameter:
            return  # attachments alone cannot ride in a text template
        language = channel.setting("template_language", "en_US")
        wamid = await graph.send(compose.template(_to(item), name, language, parameter))
        state.template_sent(served.tenant, channel.channel_id, customer, self._clock())
        if wamid:
            gateway.sent.remember(served.tenant, channel.channel_id, wamid, item.message.name)


def _to(item: pb.OutboundItem) -> str:
    """The recipient as the Cloud API takes it: international digits without ``+``."""
    return item.external_id.removeprefix("+")


async def _best_effort(call: Awaitable[None], what: str) -> None:
    """Read marks and typing are courtesies: a failure is logged, never retried."""
    try:
        await call
    except (DeliveryError, httpx.TransportError) as exc:
        log.info("courtesy call failed", call=what, error=str(exc))
