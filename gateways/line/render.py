"""LINE message objects to and from Usher's text and attachments.

Inbound: text as is; a sticker or a location as readable text; images, videos, audio and files
are fetched (``is_media``) unless another provider hosts them, then they become a link.
Outbound: text in 5000-character pieces; JPEG and PNG images served over https as image
messages; any other attachment as a link (LINE cannot show a bot's files, and its video and
audio messages need a preview image or a duration the gateway does not have). A message's
choices become quick reply buttons on its last message object: postback actions whose ``data``
carries the option's id (``usher_choice=<id>``) and whose ``displayText`` (what the chat shows
as the customer's words) is the title; labels are shortened to LINE's 20 characters, and when
that or a description would hide something, the text lists the options numbered too.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from usher.v1 import conversation_pb2

from gateways.common.choices import numbered_lines, options_of

MEDIA = frozenset({"image", "video", "audio", "file"})
TEXT_LIMIT = 5000
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
PER_REQUEST = 5
"""LINE takes at most five message objects per reply or push."""
QUICK_REPLIES_MAX, LABEL_MAX, DISPLAY_TEXT_MAX = 13, 20, 300
CHOICE_KEY = "usher_choice"
"""The postback ``data`` key that carries an option's id (other postbacks are the tenant's)."""


def is_media(message: Mapping[str, Any]) -> bool:
    """Whether the message's content is LINE's to fetch from the content API."""
    provider = message.get("contentProvider") or {}
    return message.get("type") in MEDIA and provider.get("type", "line") == "line"


def media_name(message: Mapping[str, Any], content_type: str) -> str:
    name = message.get("fileName")
    if isinstance(name, str) and name:
        return name
    extension = mimetypes.guess_extension(content_type) or ""
    return f"{message.get('type', 'file')}-{message.get('id', '')}{extension}"


def inbound_text(message: Mapping[str, Any]) -> str:
    """What the agent reads for a message (empty for fetched media)."""
    kind = message.get("type")
    if kind == "text":
        return str(message.get("text", ""))
    if kind == "sticker":
        words = message.get("keywords") or []
        said = message.get("text") or ", ".join(str(w) for w in words[:5])
        return f"[Sticker: {said}]" if said else "[Sticker]"
    if kind == "location":
        lines = [f"[Location] {message.get('title') or ''}".rstrip()]
        if message.get("address"):
            lines.append(str(message["address"]))
        lat, lng = message.get("latitude"), message.get("longitude")
        if lat is not None and lng is not None:
            lines.append(f"https://www.google.com/maps?q={lat},{lng}")
        return "\n".join(lines)
    if kind in MEDIA and not is_media(message):
        url = (message.get("contentProvider") or {}).get("originalContentUrl", "")
        return f"[{kind}] {url}".rstrip()
    if kind in MEDIA:
        return ""
    return f"[{kind} message]"


def _pieces(text: str) -> list[str]:
    return [text[i : i + TEXT_LIMIT] for i in range(0, len(text), TEXT_LIMIT)]


def fit(text: str, limit: int) -> str:
    """``text`` on one line within ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def postback_data(option_id: str) -> str:
    return f"{CHOICE_KEY}={option_id}"


def picked_option(data: str) -> str | None:
    """The option id a postback's ``data`` carries, or None for anyone else's postback."""
    found = parse_qs(data, keep_blank_values=True).get(CHOICE_KEY)
    return found[0] if found and len(found) == 1 and found[0] else None


def quick_reply(choices: conversation_pb2.MessageChoices) -> dict[str, Any]:
    """The ``quickReply`` object of a message offering ``choices`` (postback actions)."""
    return {
        "items": [
            {
                "type": "action",
                "action": {
                    "type": "postback",
                    "label": fit(o.title, LABEL_MAX),
                    "data": postback_data(o.id),
                    "displayText": fit(o.title, DISPLAY_TEXT_MAX),
                },
            }
            for o in choices.options[:QUICK_REPLIES_MAX]
        ]
    }


def lists_options(choices: conversation_pb2.MessageChoices) -> bool:
    """Whether the text must list the options: a description, or a label cut short."""
    return any(
        o.description.strip() or fit(o.title, LABEL_MAX) != " ".join(o.title.split())
        for o in choices.options
    )


def choices_text(text: str, choices: conversation_pb2.MessageChoices) -> str:
    """The text of a message with choices: header, text, the options when they must be
    listed (``lists_options``), footer."""
    listed = "\n".join(numbered_lines(options_of(choices))) if lists_options(choices) else ""
    parts = (choices.header, text, listed, choices.footer)
    return "\n\n".join(p.strip() for p in parts if p.strip())


def outbound(
    text: str,
    attachments: Sequence[conversation_pb2.Attachment] = (),
    url: Callable[[conversation_pb2.Attachment], str] = lambda a: a.uri,
    choices: conversation_pb2.MessageChoices | None = None,
) -> list[dict[str, Any]]:
    """LINE message objects for ``text`` and ``attachments``, each attachment reachable at
    ``url(attachment)``, and ``choices`` as quick replies on the last one."""
    if choices is not None:
        text = choices_text(text, choices)
    messages: list[dict[str, Any]] = [{"type": "text", "text": p} for p in _pieces(text)]
    for attachment in attachments:
        link = url(attachment)
        if attachment.content_type in IMAGE_TYPES and link.startswith("https://"):
            messages.append({"type": "image", "originalContentUrl": link, "previewImageUrl": link})
        else:
            messages.append({"type": "text", "text": f"{attachment.name}: {link}"})
    if choices is not None:
        messages[-1] = {**messages[-1], "quickReply": quick_reply(choices)}
    return messages


def batches(messages: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [list(messages[i : i + PER_REQUEST]) for i in range(0, len(messages), PER_REQUEST)]
