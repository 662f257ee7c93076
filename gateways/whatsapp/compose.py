"""Cloud API ``/messages`` bodies for what Usher sends a customer: text, media by link, reply
buttons and lists (see ``options``), and the template used outside the service window."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from usher.v1 import conversation_pb2

from gateways.whatsapp.options import Option, split_options

Attachment = conversation_pb2.Attachment

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
BUTTONS_MAX, BUTTON_TITLE_MAX, BUTTON_BODY_MAX = 3, 20, 1024
CAPTIONED = ("image", "video", "document")
ROWS_MAX, ROW_TITLE_MAX, ROW_DESCRIPTION_MAX, ID_MAX = 10, 24, 72, 200


@dataclass(frozen=True)
class Style:
    """Channel settings that shape interactive messages."""

    list_button: str = "Options"
    """The label of the button that opens a list (20 characters at most)."""
    prompt: str = "Please choose:"
    """The body of an interactive message whose text is only options."""


def envelope(to: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: content,
    }


def text(to: str, body: str) -> list[dict[str, Any]]:
    """One text message per 4096 characters; links get a preview."""
    chunks = [body[i : i + TEXT_LIMIT] for i in range(0, len(body), TEXT_LIMIT)] or [""]
    return [
        envelope(to, "text", {"body": chunk, "preview_url": "http" in chunk and "://" in chunk})
        for chunk in chunks
        if chunk.strip()
    ]


def media_kind(content_type: str) -> str:
    """The Cloud API message type an attachment goes out as."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("image/jpeg", "image/png"):
        return "image"
    if kind == "image/webp":
        return "sticker"
    if kind in ("video/mp4", "video/3gpp"):
        return "video"
    if kind in ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"):
        return "audio"
    return "document"


def media(to: str, attachment: Attachment, link: str, caption: str = "") -> dict[str, Any]:
    """An attachment by ``link`` (WhatsApp fetches it from there)."""
    kind = media_kind(attachment.content_type)
    content: dict[str, Any] = {"link": link}
    if caption and kind in CAPTIONED:
        content["caption"] = caption
    if kind == "document" and attachment.name:
        content["filename"] = attachment.name
    return envelope(to, kind, content)


def _distinct(values: Iterable[str]) -> bool:
    seen = list(values)
    return len(set(seen)) == len(seen)


def _buttons(body: str, options: Sequence[Option]) -> dict[str, Any] | None:
    if not (len(options) <= BUTTONS_MAX and len(body) <= BUTTON_BODY_MAX):
        return None
    if any(o.description or len(o.title) > BUTTON_TITLE_MAX or len(o.id) > ID_MAX for o in options):
        return None
    if len({o.title for o in options}) < len(options) or len({o.id for o in options}) < len(
        options
    ):
        return None
    return {
        "type": "button",
        "body": {"text": body},
        "action": {
            "buttons": [{"type": "reply", "reply": {"id": o.id, "title": o.title}} for o in options]
        },
    }


def _list(body: str, options: Sequence[Option], style: Style) -> dict[str, Any] | None:
    if not (len(options) <= ROWS_MAX and len(body) <= TEXT_LIMIT):
        return None
    if any(
        len(o.title) > ROW_TITLE_MAX
        or len(o.description) > ROW_DESCRIPTION_MAX
        or len(o.id) > ID_MAX
        for o in options
    ):
        return None
    if len({o.id for o in options}) < len(options):
        return None
    rows = []
    for o in options:
        row = {"id": o.id, "title": o.title}
        if o.description:
            row["description"] = o.description
        rows.append(row)
    return {
        "type": "list",
        "body": {"text": body},
        "action": {"button": style.list_button[:BUTTON_TITLE_MAX], "sections": [{"rows": rows}]},
    }


def message(
    to: str, message: conversation_pb2.Message, style: Style, link: Callable[[Attachment], str]
) -> list[dict[str, Any]]:
    """The requests for one agent or bot message, in sending order: attachments, then the text
    (as the caption of a lone image, video or document when it fits), buttons or a list when the
    text ends in options, plain text with the options listed when WhatsApp's limits forbid."""
    body, options = split_options(message.text)
    attachments = list(message.attachments)
    captioned = len(attachments) == 1 and media_kind(attachments[0].content_type) in CAPTIONED
    if captioned and not options and len(body) <= CAPTION_LIMIT:
        return [media(to, attachments[0], link(attachments[0]), body)]
    out = [media(to, a, link(a)) for a in attachments]
    if not options:
        return out + text(to, body)
    prompt = body or style.prompt
    interactive = _buttons(prompt, options) or _list(prompt, options, style)
    if interactive is not None:
        return [*out, envelope(to, "interactive", interactive)]
    listed = "\n".join(f"• {o.title}" for o in options)
    return out + text(to, f"{body}\n{listed}".strip())


def template(to: str, name: str, language: str, parameter: str | None) -> dict[str, Any]:
    """A template message; ``parameter`` fills the body's single variable when given."""
    content: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameter is not None:
        content["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": parameter}]}
        ]
    return envelope(to, "template", content)
