"""Cloud API ``/messages`` bodies for what Usher sends a customer: text, media by link, a
message's choices as reply buttons or a list (``interactive``), and the template used outside
the service window."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from usher.v1 import conversation_pb2

from gateways.common.choices import numbered_text

Attachment = conversation_pb2.Attachment
Choices = conversation_pb2.MessageChoices

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
BUTTONS_MAX, BUTTON_TITLE_MAX, BUTTON_BODY_MAX = 3, 20, 1024
CAPTIONED = ("image", "video", "document")
ROWS_MAX, ROW_TITLE_MAX, ROW_DESCRIPTION_MAX = 10, 24, 72
HEADER_MAX, FOOTER_MAX = 60, 60


@dataclass(frozen=True)
class Style:
    """Channel settings that shape interactive messages."""

    list_button: str = "Options"
    """The label of the button that opens a list (20 characters at most)."""
    prompt: str = "Please choose:"
    """The body of an interactive message whose message has no text (only attachments)."""


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


def fit(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, shortened with an ellipsis when it is longer."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _frame(content: dict[str, Any], choices: Choices) -> dict[str, Any]:
    """``content`` with the choices' header and footer, when they have them."""
    if choices.header.strip():
        content["header"] = {"type": "text", "text": fit(choices.header, HEADER_MAX)}
    if choices.footer.strip():
        content["footer"] = {"text": fit(choices.footer, FOOTER_MAX)}
    return content


def buttons(body: str, choices: Choices) -> dict[str, Any] | None:
    """Reply buttons: up to three options with distinct titles (shortened to 20 characters;
    buttons show no descriptions); None when they do not fit."""
    options = choices.options
    titles = [fit(o.title, BUTTON_TITLE_MAX) for o in options]
    if not 1 <= len(options) <= BUTTONS_MAX or len(body) > BUTTON_BODY_MAX:
        return None
    if len(set(titles)) < len(titles):
        return None
    return _frame(
        {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": o.id, "title": title}}
                    for o, title in zip(options, titles, strict=True)
                ]
            },
        },
        choices,
    )


def rows_list(body: str, choices: Choices, style: Style) -> dict[str, Any] | None:
    """A list: up to ten rows (titles shortened to 24 characters, descriptions to 72) behind
    a button labelled ``button_text`` (or the channel's ``list_button``); None past that."""
    options = choices.options
    if not 1 <= len(options) <= ROWS_MAX or len(body) > TEXT_LIMIT:
        return None
    rows = []
    for o in options:
        row = {"id": o.id, "title": fit(o.title, ROW_TITLE_MAX)}
        if o.description.strip():
            row["description"] = fit(o.description, ROW_DESCRIPTION_MAX)
        rows.append(row)
    label = fit(choices.button_text or style.list_button, BUTTON_TITLE_MAX)
    return _frame(
        {
            "type": "list",
            "body": {"text": body},
            "action": {"button": label, "sections": [{"rows": rows}]},
        },
        choices,
    )


def interactive(body: str, choices: Choices, style: Style) -> dict[str, Any] | None:
    """The interactive object for ``choices``: reply buttons when the style allows and they
    fit, else a list, else None (the caller sends numbered text)."""
    listed = choices.style == conversation_pb2.CHOICE_STYLE_LIST or (
        choices.style == conversation_pb2.CHOICE_STYLE_UNSPECIFIED
        and any(o.description.strip() for o in choices.options)
    )
    return (None if listed else buttons(body, choices)) or rows_list(body, choices, style)


def message(
    to: str, message: conversation_pb2.Message, style: Style, link: Callable[[Attachment], str]
) -> list[dict[str, Any]]:
    """The requests for one agent or bot message, in sending order: attachments, then the text
    (as the caption of a lone image, video or document when it fits); with choices, the text
    as the body of reply buttons or a list, or as numbered lines when WhatsApp's limits
    forbid both."""
    body = message.text
    attachments = list(message.attachments)
    choices = message.choices if message.HasField("choices") else None
    captioned = len(attachments) == 1 and media_kind(attachments[0].content_type) in CAPTIONED
    if captioned and choices is None and len(body) <= CAPTION_LIMIT:
        return [media(to, attachments[0], link(attachments[0]), body)]
    out = [media(to, a, link(a)) for a in attachments]
    if choices is None:
        return out + text(to, body)
    shown = interactive(body.strip() or style.prompt, choices, style)
    if shown is not None:
        return [*out, envelope(to, "interactive", shown)]
    return out + text(to, numbered_text(body, choices))


def template(to: str, name: str, language: str, parameter: str | None) -> dict[str, Any]:
    """A template message; ``parameter`` fills the body's single variable when given."""
    content: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameter is not None:
        content["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": parameter}]}
        ]
    return envelope(to, "template", content)


def broadcast_template(
    to: str, name: str, language: str, parameters: Sequence[str], key: str
) -> dict[str, Any]:
    """A broadcast's template message with its body parameters; ``key`` rides along as
    ``biz_opaque_callback_data``, which Meta returns in the message's status webhooks."""
    content: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameters:
        content["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}
        ]
    return {**envelope(to, "template", content), "biz_opaque_callback_data": key[:512]}
