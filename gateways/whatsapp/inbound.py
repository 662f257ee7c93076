"""A customer's WhatsApp message as an Usher message: text as is; media fetched from the Cloud
API and stored by content hash (the caption is the text); a reply button or list row pick as
its title with the option's id as ``selected_option_id``; a template's quick-reply button as
its text; a location as a line and a maps link; contacts as names and numbers. Reactions and
other notices that are not messages give None."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from gateways.common.blobs import BlobStore, TooLarge
from gateways.common.inbox import Inbound
from gateways.whatsapp.graph import Graph, MediaError
from gateways.whatsapp.webhook import WaMessage

log = structlog.get_logger(__name__)

MEDIA = ("image", "document", "audio", "video", "sticker")
SKIPPED = ("reaction", "system", "request_welcome")


def _str(content: Mapping[str, Any], key: str) -> str:
    value = content.get(key)
    return str(value).strip() if value is not None else ""


def location(content: Mapping[str, Any]) -> str:
    """``📍 name, address (lat, lon)`` and a Google Maps link on the next line."""
    lat, lon = _str(content, "latitude"), _str(content, "longitude")
    place = ", ".join(part for part in (_str(content, "name"), _str(content, "address")) if part)
    line = f"📍 {place} ({lat}, {lon})" if place else f"📍 ({lat}, {lon})"
    return f"{line}\nhttps://www.google.com/maps/search/?api=1&query={lat},{lon}"


def contacts(content: Mapping[str, Any]) -> str:
    lines = []
    cards = content.get("contacts")
    for card in cards if isinstance(cards, list) else []:
        if not isinstance(card, dict):
            continue
        name = card.get("name", {})
        formatted = name.get("formatted_name", "") if isinstance(name, dict) else ""
        phones = [
            str(p.get("phone", "")) for p in card.get("phones", []) or [] if isinstance(p, dict)
        ]
        lines.append(f"👤 {formatted} {' '.join(p for p in phones if p)}".rstrip())
    return "\n".join(lines)


def interactive(content: Mapping[str, Any]) -> tuple[str, str]:
    """(text, option id) of an interactive reply: ``button_reply`` or ``list_reply``."""
    kind = _str(content, "type")
    reply = content.get(kind)
    if kind in ("button_reply", "list_reply") and isinstance(reply, dict):
        option = _str(reply, "id")
        return _str(reply, "title") or option, option
    return f"[WhatsApp interactive reply: {kind or 'unknown'}]", ""


async def to_inbound(message: WaMessage, graph: Graph, blobs: BlobStore) -> Inbound | None:
    """``message`` as an ``Inbound``; raises ``MediaError`` when media is transiently missing
    (the webhook should be redelivered)."""
    content = message.content
    kind = message.type
    if kind in SKIPPED:
        return None
    if kind in MEDIA:
        return await _media(message, graph, blobs)
    option = ""
    if kind == "text":
        text = _str(content, "body")
    elif kind == "interactive":
        text, option = interactive(content)
    elif kind == "button":  # a template's quick-reply button: its payload is the template's
        text = _str(content, "text") or _str(content, "payload")
    elif kind == "location":
        text = location(content)
    elif kind == "contacts":
        text = contacts(content)
    else:
        text = f"[unsupported WhatsApp message: {kind}]"
    return Inbound(message.id, text=text, sent_at=message.sent_at, selected_option_id=option)


async def _media(message: WaMessage, graph: Graph, blobs: BlobStore) -> Inbound:
    content = message.content
    caption = _str(content, "caption")
    name = _str(content, "filename") or f"{message.type}-{message.id[-12:]}"
    media_id = _str(content, "id")
    try:
        if not media_id:
            raise MediaError("the message names no media", transient=False)
        fetched = await graph.media(media_id, limit=blobs.max_bytes)
        blob = blobs.put(fetched.data, content_type=fetched.content_type, name=name)
    except TooLarge as exc:
        return _placeholder(message, caption, f"[{message.type} {name} not kept: {exc}]")
    except MediaError as exc:
        if exc.transient:
            raise
        return _placeholder(message, caption, f"[{message.type} {name} not kept: {exc}]")
    return Inbound(
        message.id, text=caption, attachments=(blobs.attachment(blob),), sent_at=message.sent_at
    )


def _placeholder(message: WaMessage, caption: str, note: str) -> Inbound:
    log.warning("customer media not kept", wamid=message.id, reason=note)
    return Inbound(message.id, text=f"{caption}\n{note}".strip(), sent_at=message.sent_at)
