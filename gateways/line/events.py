"""LINE webhook bodies read into the events the gateway handles: message, postback, follow and
unfollow from one-on-one chats. Other event types and group or room chats are skipped; an
event of a handled type that lacks what it needs makes the whole body ``Malformed``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HANDLED = frozenset({"message", "postback", "follow", "unfollow"})


class Malformed(ValueError):
    """The body is not a LINE webhook the gateway can read (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    """``message``, ``postback``, ``follow`` or ``unfollow``."""
    event_id: str
    """``webhookEventId``: unique per event, kept across redeliveries."""
    user_id: str
    sent_at: dt.datetime
    redelivery: bool
    reply_token: str = ""
    message: Mapping[str, Any] = field(default_factory=dict)
    """The message object of a message event."""
    postback_data: str = ""


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} is missing")
    return value


def _event(raw: object) -> Event | None:
    if not isinstance(raw, dict):
        raise Malformed("an event is not an object")
    kind = raw.get("type")
    if kind not in HANDLED:
        return None
    source = raw.get("source")
    if not isinstance(source, dict):
        raise Malformed(f"a {kind} event has no source")
    if source.get("type") != "user":
        return None  # group and room chats are not customer conversations
    timestamp = raw.get("timestamp")
    if not isinstance(timestamp, int):
        raise Malformed(f"a {kind} event has no timestamp")
    context = raw.get("deliveryContext")
    message = raw.get("message", {}) if kind == "message" else {}
    if kind == "message":
        if not isinstance(message, dict):
            raise Malformed("a message event has no message")
        _text(message.get("id"), "message.id")
        _text(message.get("type"), "message.type")
    postback_data = ""
    if kind == "postback":
        postback = raw.get("postback")
        data = postback.get("data") if isinstance(postback, dict) else None
        postback_data = _text(data, "postback.data")
    token = raw.get("replyToken", "")
    return Event(
        kind=str(kind),
        event_id=_text(raw.get("webhookEventId"), "webhookEventId"),
        user_id=_text(source.get("userId"), "source.userId"),
        sent_at=dt.datetime.fromtimestamp(timestamp / 1000, dt.UTC),
        redelivery=isinstance(context, dict) and context.get("isRedelivery") is True,
        reply_token=token if isinstance(token, str) else "",
        message=message,
        postback_data=postback_data,
    )


def parse(body: bytes) -> list[Event]:
    """The handled events of a webhook body, in order (an empty list for LINE's URL check)."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise Malformed("the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise Malformed("the body has no events list")
    return [event for raw in payload["events"] if (event := _event(raw)) is not None]
