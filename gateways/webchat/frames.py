"""The widget's WebSocket protocol: JSON text frames, one object each with a ``type``.

From the widget: ``hello`` (first, once; with ``ref``, the QR code's reference, when the page
has one), ``profile`` (the pre-chat form), ``message`` (with
``option``, the id of a choice the visitor clicked, when it is a pick), ``typing``, ``read``,
``rate``, ``leave``. ``parse`` turns a frame into a value or raises
``Malformed`` (the socket then closes with 1003 and nothing is stored). To the widget:
``render`` turns an OutboundItem into the frame pushed to the visitor (None for what the
widget does not show); an agent's or bot's message carries its ``choices``
(``{style, header, footer, button_text, options: [{id, title, description}]}``), which the
widget shows as buttons.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
OPTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MESSAGE_NAME = re.compile(r"conversations/[A-Za-z0-9_-]{1,64}/messages/[0-9]{1,20}")
CONVERSATION_NAME = re.compile(r"conversations/[A-Za-z0-9_-]{1,64}")
SHA256 = re.compile(r"[0-9a-f]{64}")
REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A QR code's or campaign link's reference (the core's id form: 1 to 64 of A-Za-z0-9_.-)."""
REFERENCE_PARAMETER = "ref"
"""The page URL's query parameter a QR code's web chat link carries the reference in."""
MAX_TEXT = 64 * 1024
MAX_FIELD = 2048


class Malformed(ValueError):
    """Not a frame of the protocol."""


@dataclass(frozen=True, slots=True)
class Hello:
    """Who is connecting and from where. ``visitor`` is empty when the widget has none yet;
    ``after`` is the last history sequence number the widget holds (0: replay all kept)."""

    visitor: str
    after: int = 0
    reference: str = ""
    """The QR code's or campaign link's reference the visitor came with (``reference_of``);
    empty: none, or not one of the form."""
    page: str = ""
    referrer: str = ""
    title: str = ""
    language: str = ""
    name: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    """The pre-chat form: who the visitor says they are (used when a conversation starts)."""

    name: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    sha256: str
    name: str


@dataclass(frozen=True, slots=True)
class Say:
    """A customer message. ``id`` is the widget's own id for it (resent after a reconnect)."""

    id: str
    text: str
    attachments: Sequence[AttachmentRef] = field(default_factory=tuple)
    option: str = ""
    """The id of the choice clicked (the text is its title), or "" for typed words."""


@dataclass(frozen=True, slots=True)
class Typing:
    active: bool


@dataclass(frozen=True, slots=True)
class Read:
    """The visitor saw every agent message up to ``message``."""

    message: str


@dataclass(frozen=True, slots=True)
class Rate:
    conversation: str
    score: int
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Leave:
    """The visitor ended the chat."""


Frame = Hello | Profile | Say | Typing | Read | Rate | Leave


def _text(data: Mapping[str, Any], key: str, *, limit: int = MAX_FIELD) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise Malformed(f"{key} must be a string of at most {limit} characters")
    return value


def _matching(data: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise Malformed(f"{key} is missing or malformed")
    return value


def _attachments(raw: object) -> tuple[AttachmentRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 10:
        raise Malformed("attachments must be a list of at most 10")
    refs = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise Malformed("an attachment must be an object")
        refs.append(AttachmentRef(_matching(entry, "sha256", SHA256), _text(entry, "name")))
    return tuple(refs)


def reference_of(given: str, page: str) -> str:
    """The reference a hello carries: its ``ref`` (the embedding page's, or what the widget
    read from its page URL), else the page URL's ``ref`` query parameter; one not of the
    core's form is dropped (the chat works, tied to no code)."""
    if not given:
        query = urllib.parse.urlsplit(page).query
        found = urllib.parse.parse_qs(query).get(REFERENCE_PARAMETER, [""])
        given = found[0]
    return given if REFERENCE.fullmatch(given) else ""


def parse(raw: str) -> Frame:
    """The frame ``raw`` holds; ``Malformed`` if it is not one."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise Malformed("not JSON") from None
    if not isinstance(data, dict):
        raise Malformed("a frame is a JSON object")
    kind = data.get("type")
    if kind == "hello":
        after = data.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise Malformed("after must be a non-negative integer")
        visitor = _text(data, "visitor", limit=64)
        if visitor and VISITOR_ID.fullmatch(visitor) is None:
            visitor = ""  # not one we issue: the visitor gets a fresh id
        page = _text(data, "page")
        return Hello(
            visitor,
            after,
            reference=reference_of(_text(data, "ref", limit=64), page),
            page=page,
            referrer=_text(data, "referrer"),
            title=_text(data, "title"),
            language=_text(data, "language", limit=35),
            name=_text(data, "name", limit=200),
            phone=_text(data, "phone", limit=200),
            email=_text(data, "email", limit=200),
        )
    if kind == "profile":
        return Profile(
            _text(data, "name", limit=200),
            _text(data, "phone", limit=200),
            _text(data, "email", limit=200),
        )
    if kind == "message":
        text = _text(data, "text", limit=MAX_TEXT)
        attachments = _attachments(data.get("attachments"))
        if not text.strip() and not attachments:
            raise Malformed("a message needs text or an attachment")
        option = _matching(data, "option", OPTION_ID) if data.get("option") else ""
        return Say(_matching(data, "id", CLIENT_ID), text, attachments, option)
    if kind == "typing":
        active = data.get("active")
        if not isinstance(active, bool):
            raise Malformed("active must be true or false")
        return Typing(active)
    if kind == "read":
        return Read(_matching(data, "message", MESSAGE_NAME))
    if kind == "rate":
        score = data.get("score")
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise Malformed("score must be 1 to 5")
        return Rate(
            _matching(data, "conversation", CONVERSATION_NAME),
            score,
            _text(data, "comment", limit=2000),
        )
    if kind == "leave":
        return Leave()
    raise Malformed(f"unknown frame type {kind!r}")


SENDERS = {
    conversation_pb2.SENDER_AGENT: "agent",
    conversation_pb2.SENDER_BOT: "bot",
    conversation_pb2.SENDER_SYSTEM: "system",
    conversation_pb2.SENDER_CUSTOMER: "customer",
}
STATES = {
    conversation_pb2.CONVERSATION_STATE_BOT: "bot",
    conversation_pb2.CONVERSATION_STATE_QUEUED: "queued",
    conversation_pb2.CONVERSATION_STATE_OFFERED: "offered",
    conversation_pb2.CONVERSATION_STATE_ACTIVE: "active",
    conversation_pb2.CONVERSATION_STATE_WRAP_UP: "wrap_up",
    conversation_pb2.CONVERSATION_STATE_CLOSED: "closed",
    conversation_pb2.CONVERSATION_STATE_ABANDONED: "abandoned",
}


def system_kind(kind: conversation_pb2.SystemMessageKind.ValueType) -> str:
    """``leave_message`` for SYSTEM_MESSAGE_KIND_LEAVE_MESSAGE, and so on."""
    name = conversation_pb2.SystemMessageKind.Name(kind)
    return name.removeprefix("SYSTEM_MESSAGE_KIND_").lower()


def attachment_json(attachment: conversation_pb2.Attachment) -> dict[str, Any]:
    return {
        "name": attachment.name,
        "url": attachment.uri,
        "content_type": attachment.content_type,
        "size": attachment.size,
    }


STYLES = {
    conversation_pb2.CHOICE_STYLE_UNSPECIFIED: "auto",
    conversation_pb2.CHOICE_STYLE_BUTTONS: "buttons",
    conversation_pb2.CHOICE_STYLE_LIST: "list",
}


def choices_json(choices: conversation_pb2.MessageChoices) -> dict[str, Any]:
    return {
        "style": STYLES.get(choices.style, "auto"),
        "header": choices.header,
        "footer": choices.footer,
        "button_text": choices.button_text,
        "options": [
            {"id": o.id, "title": o.title, "description": o.description} for o in choices.options
        ],
    }


def render(item: pb.OutboundItem) -> dict[str, Any] | None:
    """The frame for one outbound item, or None when the widget shows nothing for it."""
    base: dict[str, Any] = {"conversation": item.conversation, "event": item.event_id}
    if item.HasField("time"):
        base["time"] = item.time.ToJsonString()
    kind = item.WhichOneof("item")
    if kind == "message":
        message = item.message
        frame = {
            **base,
            "type": "message",
            "message": message.name,
            "sender": SENDERS.get(message.sender, "agent"),
            "agent": message.agent.removeprefix("agents/"),
            "text": message.text,
            "attachments": [attachment_json(a) for a in message.attachments],
        }
        if message.HasField("choices"):
            frame["choices"] = choices_json(message.choices)
        return frame
    if kind == "system_message":
        if not item.system_message.text:
            return None
        return {
            **base,
            "type": "system",
            "kind": system_kind(item.system_message.kind),
            "text": item.system_message.text,
        }
    if kind == "state_change":
        return {
            **base,
            "type": "state",
            "state": STATES.get(item.state_change.state, "unknown"),
            "reason": item.state_change.reason,
        }
    if kind == "receipt":
        delivered = item.receipt.status == conversation_pb2.RECEIPT_STATUS_DELIVERED
        status = "delivered" if delivered else "read"
        return {**base, "type": "receipt", "message": item.receipt.message, "status": status}
    if kind == "typing":
        if not item.typing.agent:
            return None  # the customer's own typing, echoed
        return {**base, "type": "typing", "active": item.typing.active}
    return None


def customer_message(
    message: conversation_pb2.Message, client_id: str, conversation: str
) -> dict[str, Any]:
    """The history entry for the visitor's own message (replayed on reload)."""
    entry = {
        "type": "message",
        "conversation": conversation,
        "message": message.name,
        "sender": "customer",
        "id": client_id,
        "text": message.text,
        "attachments": [attachment_json(a) for a in message.attachments],
        "time": message.create_time.ToJsonString() if message.HasField("create_time") else "",
    }
    if message.selected_option_id:
        entry["option"] = message.selected_option_id
    return entry
