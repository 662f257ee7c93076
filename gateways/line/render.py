"""LINE message objects to and from Usher's text and attachments.

Inbound: text as is; a sticker or a location as readable text; images, videos, audio and files
are fetched (``is_media``) unless another provider hosts them, then they become a link.
Outbound: text in 5000-character pieces; JPEG and PNG images served over https as image
messages; any other attachment as a link (LINE cannot show a bot's files, and its video and
audio messages need a preview image or a duration the gateway does not have).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from usher.v1 import conversation_pb2

MEDIA = frozenset({"image", "video", "audio", "file"})
TEXT_LIMIT = 5000
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
PER_REQUEST = 5
"""LINE takes at most five message objects per reply or push."""


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


def outbound(
    text: str,
    attachments: Sequence[conversation_pb2.Attachment] = (),
    url: Callable[[conversation_pb2.Attachment], str] = lambda a: a.uri,
) -> list[dict[str, Any]]:
    """LINE message objects for ``text`` and ``attachments``, each attachment reachable at
    ``url(attachment)``."""
    messages: list[dict[str, Any]] = [{"type": "text", "text": p} for p in _pieces(text)]
    for attachment in attachments:
        link = url(attachment)
        if attachment.content_type in IMAGE_TYPES and link.startswith("https://"):
            messages.append({"type": "image", "originalContentUrl": link, "previewImageUrl": link})
        else:
            messages.append({"type": "text", "text": f"{attachment.name}: {link}"})
    return messages


def batches(messages: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [list(messages[i : i + PER_REQUEST]) for i in range(0, len(messages), PER_REQUEST)]
