"""The Cloud API's webhook body, read into values: every ``messages`` change of every entry,
with its business number, its senders' profile names, its messages and its statuses.

``parse`` checks the whole body before anything is stored, so a malformed webhook is refused
as a unit (``Malformed``). Message objects are kept as the API sends them (``content`` is the
object named by ``type``); ``inbound`` turns them into Usher messages.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Malformed(ValueError):
    """Not a WhatsApp Business Account webhook the gateway can read."""


@dataclass(frozen=True, slots=True)
class WaMessage:
    """One customer message: ``sender`` is the wa_id (international digits)."""

    id: str
    sender: str
    type: str
    content: Mapping[str, Any]
    sent_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class WaStatus:
    """What became of a message the business sent: sent, delivered, read or failed."""

    id: str
    status: str
    recipient: str = ""
    errors: tuple[str, ...] = ()
    callback_data: str = ""
    """The ``biz_opaque_callback_data`` the message was sent with (a broadcast's key)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One ``messages`` change: all of it concerns the business number ``phone_number_id``."""

    phone_number_id: str
    names: Mapping[str, str] = field(default_factory=dict)
    """Profile name by wa_id, from ``contacts``."""
    messages: tuple[WaMessage, ...] = ()
    statuses: tuple[WaStatus, ...] = ()


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} is not a list")
    return value


def _text(value: Any, what: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} is missing")
    return value


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _message(raw: Any) -> WaMessage:
    message = _object(raw, "a message")
    kind = _text(message.get("type"), "a message's type")
    content = message.get(kind)
    if isinstance(content, list):  # ``contacts`` is a list of cards
        content = {kind: content}
    return WaMessage(
        id=_text(message.get("id"), "a message's id"),
        sender=_text(message.get("from"), "a message's sender"),
        type=kind,
        content=content if isinstance(content, dict) else {},
        sent_at=_time(message.get("timestamp")),
    )


def _status(raw: Any) -> WaStatus:
    status = _object(raw, "a status")
    errors = tuple(
        f"{e.get('code', '?')}: {e.get('title') or e.get('message') or ''}".strip()
        for e in _list(status.get("errors"), "a status's errors")
        if isinstance(e, dict)
    )
    return WaStatus(
        id=_text(status.get("id"), "a status's id"),
        status=_text(status.get("status"), "a status's status"),
        recipient=str(status.get("recipient_id", "")),
        errors=errors,
        callback_data=str(status.get("biz_opaque_callback_data", ""))[:512],
    )


def _change(raw: Any) -> Change | None:
    change = _object(raw, "a change")
    if change.get("field") != "messages":
        return None  # other subscriptions (templates, account updates) are not ours
    value = _object(change.get("value"), "a change's value")
    metadata = value.get("metadata")
    number = str(metadata.get("phone_number_id", "")) if isinstance(metadata, dict) else ""
    names = {}
    for contact in _list(value.get("contacts"), "contacts"):
        if isinstance(contact, dict) and contact.get("wa_id"):
            profile = contact.get("profile")
            name = profile.get("name", "") if isinstance(profile, dict) else ""
            names[str(contact["wa_id"])] = str(name)
    return Change(
        phone_number_id=number,
        names=names,
        messages=tuple(_message(m) for m in _list(value.get("messages"), "messages")),
        statuses=tuple(_status(s) for s in _list(value.get("statuses"), "statuses")),
    )


def parse(body: bytes) -> list[Change]:
    """The ``messages`` changes of a webhook body, in order; ``Malformed`` if unreadable."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the body is not JSON") from None
    payload = _object(payload, "the body")
    if payload.get("object") != "whatsapp_business_account":
        raise Malformed("the body is not a whatsapp_business_account notification")
    changes = []
    for entry in _list(payload.get("entry"), "entry"):
        for raw in _list(_object(entry, "an entry").get("changes"), "changes"):
            change = _change(raw)
            if change is not None:
                changes.append(change)
    return changes
