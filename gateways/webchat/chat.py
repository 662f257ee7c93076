"""What the widget's actions do in the core, and what the core's outbound items do to the
widget: the web chat gateway's one place of behaviour, shared by its socket and HTTP routes.

Every customer message is posted through the common inbox (idempotent on ``{visitor}.{id}``,
the widget's own id) and recorded in the visitor's history only after the core stored it.
Outbound items are recorded in the history first, then pushed to the visitor's open sockets, so
a widget that was away replays them on its next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import structlog
from usher.client import AlreadyExists, FailedPrecondition, NotFound
from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.directory import Served
from gateways.common.gateway import Gateway
from gateways.common.inbox import Customer, Inbound, Posted
from gateways.webchat import frames
from gateways.webchat.sessions import Key, Sessions, Visit
from gateways.webchat.store import WebChatStore

log = structlog.get_logger(__name__)

OFFLINE_TAG = "offline"
SAFE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
    }
)
"""Uploads keep these content types; anything else is stored as application/octet-stream,
so a file served from the gateway's origin can never run as a page there."""
HUSHED_WHEN_OFFLINE = frozenset(
    {"welcome", "waiting", "out_of_hours", "break_time", "leave_message", "idle_reminder"}
)
"""System messages the visitor does not see for a conversation carrying a left message."""
STILL_WAITING = frozenset({"", "bot", "queued", "offered"})
OFFLINE_SETTLE_SECONDS = 10.0


class Refused(ValueError):
    """A well-formed request the gateway will not carry out (told to the widget)."""


def key_of(served: Served, visitor: str) -> Key:
    return (served.tenant, served.channel.channel_id, visitor)


class Chat:
    """See the module docstring."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = WebChatStore(gateway.settings.data_dir / "webchat.sqlite3")
        self.sessions = Sessions()
        self._leaving_messages: dict[Key, asyncio.Event] = {}

    def close(self) -> None:
        self.store.close()

    # --- into the core ---------------------------------------------------------------------------

    def language(self, served: Served, browser: str) -> str:
        """The channel's ``language`` setting wins over the browser's."""
        return served.channel.settings.get("language", "") or browser

    def attachments(
        self, refs: Sequence[frames.AttachmentRef]
    ) -> list[conversation_pb2.Attachment]:
        found = []
        for ref in refs:
            blob = self.gateway.blobs.get(ref.sha256)
            if blob is None:
                raise Refused(f"no uploaded file {ref.sha256}")
            path, content_type = blob
            attachment = conversation_pb2.Attachment(
                sha256=ref.sha256,
                name=clean_name(ref.name) or ref.sha256[:12],
                content_type=content_type,
                size=path.stat().st_size,
                uri=self.gateway.blobs.url(ref.sha256),
            )
            found.append(attachment)
        return found

    async def say(self, served: Served, visit: Visit, say: frames.Say) -> dict[str, Any]:
        """Post the visitor's message; the ``ack`` frame for the widget."""
        attachments = self.attachments(say.attachments)
        posted = await self.gateway.inbox.post(
            served,
            visit.customer,
            Inbound(
                f"{visit.visitor}.{say.id}",
                text=say.text,
                attachments=attachments,
                region=visit.region,
                language=self.language(served, visit.language),
                selected_option_id=say.option,
                reference=visit.reference,
                page=visit.page,
                referrer=visit.referrer,
            ),
        )
        self._record_post(served, visit.visitor, posted, say.id)
        return {
            "type": "ack",
            "id": say.id,
            "message": posted.message.name,
            "conversation": posted.conversation,
            "duplicate": posted.duplicate,
        }

    def _record_post(self, served: Served, visitor: str, posted: Posted, client_id: str) -> None:
        if posted.blocked:  # kept for the record only: nothing to show or follow
            return
        now = time.time()
        tenant, channel = served.tenant, served.channel.channel_id
        self.store.own(tenant, channel, visitor, posted.conversation, now=now)
        if posted.duplicate:
            return
        entry = frames.customer_message(posted.message, client_id, posted.conversation)
        seq = self.store.append(tenant, channel, visitor, entry, now=now)
        if seq is not None:
            self.sessions.push(key_of(served, visitor), {**entry, "seq": seq})

    async def typing(self, served: Served, visitor: str, active: bool) -> None:
        found = self.store.open_conversation(served.tenant, served.channel.channel_id, visitor)
        if found is None:
            return
        with contextlib.suppress(NotFound, FailedPrecondition):
            await served.client.notify_typing(
                pb.NotifyTypingRequest(conversation=found[0], active=active)
            )

    async def read(self, served: Served, visitor: str, message: str) -> bool:
        """Pass the visitor's read receipt on, once; only for their own conversations."""
        conversation = message.rsplit("/messages/", 1)[0]
        if self.store.owner(served.tenant, served.channel.channel_id, conversation) != visitor:
            return False
        return await self.gateway.receipt(served, message, "read")

    async def rate(self, served: Served, visitor: str, rate: frames.Rate) -> bool:
        """Pass the visitor's 1-5 rating of a conversation of theirs to the core
        (``RateConversation``: once, after its end); False for a repeat of it."""
        tenant, channel = served.tenant, served.channel.channel_id
        if self.store.owner(tenant, channel, rate.conversation) != visitor:
            raise Refused("not your conversation")
        try:
            kept = await served.client.rate_conversation(
                pb.RateConversationRequest(
                    conversation=rate.conversation, score=rate.score, comment=rate.comment
                )
            )
        except AlreadyExists as exc:
            raise Refused("rated already") from exc
        except FailedPrecondition as exc:
            raise Refused("the conversation cannot be rated now") from exc
        if kept.duplicate:
            return False
        entry = {"type": "rated", "conversation": rate.conversation, "score": rate.score}
        seq = self.store.append(tenant, channel, visitor, entry, now=time.time())
        if seq is not None:
            self.sessions.push(key_of(served, visitor), {**entry, "seq": seq})
        log.info("rated", tenant=tenant, conversation=rate.conversation, score=rate.score)
        return True

    async def leave(self, served: Served, visitor: str) -> None:
        found = self.store.open_conversation(served.tenant, served.channel.channel_id, visitor)
        if found is None:
            return
        with contextlib.suppress(NotFound, FailedPrecondition):
            await served.client.leave_conversation(
                pb.LeaveConversationRequest(conversation=found[0])
            )

    async def leave_message(
        self,
        served: Served,
        customer: Customer,
        message_id: str,
        text: str,
        *,
        region: str,
        language: str,
    ) -> Posted:
        """Store a left message: a conversation tagged ``offline`` whose first message it is,
        headed by the contact details given (the core keeps a returning customer's first
        details, so the form's would otherwise be lost).

        A conversation of the visitor's still waiting for an agent is left first (it would
        otherwise receive the message untagged); one an agent already has receives it."""
        key = key_of(served, customer.external_id)
        settled = self._leaving_messages.setdefault(key, asyncio.Event())
        tenant, channel = served.tenant, served.channel.channel_id
        try:
            found = self.store.open_conversation(tenant, channel, customer.external_id)
            if found is not None and found[1] in STILL_WAITING:
                with contextlib.suppress(NotFound, FailedPrecondition):
                    await served.client.leave_conversation(
                        pb.LeaveConversationRequest(conversation=found[0])
                    )
            posted = await self.gateway.inbox.post(
                served,
                customer,
                Inbound(
                    f"{customer.external_id}.offline.{message_id}",
                    text=left_message_text(customer, text),
                    region=region,
                    language=self.language(served, language),
                    tags=(OFFLINE_TAG,),
                ),
            )
            if posted.blocked:
                return posted
            now = time.time()
            self.store.own(
                tenant,
                channel,
                customer.external_id,
                posted.conversation,
                now=now,
                offline=posted.started,
            )
            if not posted.duplicate:
                entry = {"type": "offline_sent", "conversation": posted.conversation, "text": text}
                seq = self.store.append(tenant, channel, customer.external_id, entry, now=now)
                if seq is not None:
                    self.sessions.push(key, {**entry, "seq": seq})
            log.info("message left", tenant=tenant, conversation=posted.conversation)
            return posted
        finally:
            settled.set()
            if self._leaving_messages.get(key) is settled:
                del self._leaving_messages[key]

    # --- out of the core -------------------------------------------------------------------------

    async def deliver(self, served: Served, item: pb.OutboundItem) -> None:
        """Record an outbound item in the visitor's history and push it to their sockets."""
        visitor = item.external_id
        if frames.VISITOR_ID.fullmatch(visitor) is None:
            log.warning("outbound item for no web chat visitor", external_id=visitor)
            return
        tenant, channel = served.tenant, served.channel.channel_id
        key = key_of(served, visitor)
        pending = self._leaving_messages.get(key)
        if pending is not None:  # its conversation's name is not known yet: wait for it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pending.wait(), OFFLINE_SETTLE_SECONDS)
        now = time.time()
        self.store.own(tenant, channel, visitor, item.conversation, now=now)
        # buttons are clicked, but a visitor typing an option's title picks it too
        self.gateway.offers.note(tenant, channel, item, numbered=False)
        frame = frames.render(item)
        if frame is None:
            return
        if frame["type"] == "state":
            self.store.set_state(tenant, channel, item.conversation, frame["state"])
        if frame["type"] == "message":
            self.gateway.sent.remember(tenant, channel, item.message.name, item.message.name)
        if self.store.is_offline(tenant, channel, item.conversation) and hushed(frame):
            return
        if frame["type"] == "typing":  # fleeting: shown if connected, never replayed
            self.sessions.push(key, frame)
            return
        seq = self.store.append(tenant, channel, visitor, frame, event_id=item.event_id, now=now)
        if seq is not None:
            self.sessions.push(key, {**frame, "seq": seq})


def left_message_text(customer: Customer, text: str) -> str:
    """The left message as agents read it: the form's contact lines, a blank line, the text."""
    lines = [
        f"{label}: {value}"
        for label, value in (
            ("Name", customer.name),
            ("E-mail", customer.email),
            ("Phone", customer.phone),
        )
        if value
    ]
    return "\n".join([*lines, "", text]) if lines else text


def hushed(frame: dict[str, Any]) -> bool:
    """Whether a frame of a left-message conversation is kept from the visitor: its waiting
    and closing notices (the widget already thanked them); agents' answers still go through."""
    if frame["type"] == "system":
        return bool(frame["kind"] in HUSHED_WHEN_OFFLINE)
    if frame["type"] == "state":
        return bool(frame["state"] != "active")
    return False


def clean_name(name: str) -> str:
    """A file name without directories or control characters, at most 200 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable()).strip()[:200]


def is_safe_type(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in SAFE_TYPES
