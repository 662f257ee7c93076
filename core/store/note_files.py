"""Files on notes (a conversation's or a customer's), kept by reference as messages keep theirs:
a name, a media type, a size, where to fetch it (an https or object-store URI) and, optionally,
its SHA-256. Usher never fetches or stores the bytes.

``check`` is the one rule every note writer applies (at most ``MAX_FILES``, each named, typed,
located and at most ``MAX_BYTES``); ``dumps``/``loads`` are the notes tables' JSON column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

MAX_FILES: Final = 10
MAX_BYTES: Final = 100 * 1024 * 1024
"""The largest file a note may name (100 MiB)."""
MAX_NAME: Final = 255
MAX_URI: Final = 2048
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE: Final = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
    r"(?:\s*;[^\x00-\x1f\x7f]*)?"
)
_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}:\S+")
"""As the API's edge checks them (``core.api.validation.forms``); a SHA-256 is kept lower-case."""


@dataclass(frozen=True, slots=True)
class NoteFile:
    """A file a note refers to."""

    name: str
    content_type: str
    size: int
    uri: str
    sha256: str = ""


def check(files: Sequence[NoteFile], prefix: str = "attachments") -> dict[str, str]:
    """What is wrong with ``files`` (keyed ``attachments[i].field``), empty when nothing."""
    if len(files) > MAX_FILES:
        return {prefix: f"at most {MAX_FILES} files"}
    found: dict[str, str] = {}
    for i, f in enumerate(files):
        at = f"{prefix}[{i}]"
        if not f.name or len(f.name) > MAX_NAME or any(c in f.name for c in "\x00\r\n"):
            found[f"{at}.name"] = f"1 to {MAX_NAME} characters on one line"
        if not _MEDIA_TYPE.fullmatch(f.content_type) or len(f.content_type) > MAX_NAME:
            found[f"{at}.content_type"] = "a media type, like image/png"
        if not 0 <= f.size <= MAX_BYTES:
            found[f"{at}.size"] = f"0 to {MAX_BYTES} bytes"
        if not _URI.fullmatch(f.uri) or len(f.uri) > MAX_URI:
            found[f"{at}.uri"] = "an absolute URI (like https://host/path)"
        if f.sha256 and not _SHA256.fullmatch(f.sha256):
            found[f"{at}.sha256"] = "64 lowercase hex digits"
    return found


def dumps(files: Sequence[NoteFile]) -> str:
    return json.dumps(
        [
            {
                "name": f.name,
                "type": f.content_type,
                "size": f.size,
                "uri": f.uri,
                "sha256": f.sha256,
            }
            for f in files
        ],
        ensure_ascii=False,
    )


def loads(raw: str | None) -> tuple[NoteFile, ...]:
    items: list[dict[str, Any]] = json.loads(raw) if raw else []
    return tuple(
        NoteFile(
            name=str(i.get("name", "")),
            content_type=str(i.get("type", "")),
            size=int(i.get("size", 0)),
            uri=str(i.get("uri", "")),
            sha256=str(i.get("sha256", "")),
        )
        for i in items
    )
