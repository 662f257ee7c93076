"""Attachments, stored by content hash: the same bytes are kept once, under their SHA-256.

Files live under ``root/ab/cd/<sha256>`` with a ``.type`` side file holding the content type.
Writes go to a temporary file first and are renamed into place, so a reader never sees a
partial file. ``url`` is where customers, agents and providers fetch them (``/files/<sha256>``
on the gateway).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from usher.v1 import conversation_pb2

SHA256 = re.compile(r"[0-9a-f]{64}")


class TooLarge(ValueError):
    """More bytes than the limit; nothing was stored."""


@dataclass(frozen=True, slots=True)
class Blob:
    sha256: str
    size: int
    content_type: str
    name: str


class BlobStore:
    def __init__(self, root: Path, *, max_bytes: int, base_url: str) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.base_url = base_url.rstrip("/")

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, *, content_type: str, name: str = "") -> Blob:
        if len(data) > self.max_bytes:
            raise TooLarge(f"{len(data)} bytes is over the {self.max_bytes}-byte limit")
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            for target, payload in (
                (path.with_suffix(".type"), content_type.encode()),
                (path, data),
            ):
                with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
                    tmp.write(payload)
                os.replace(tmp.name, target)
        return Blob(sha256, len(data), content_type, name or sha256[:12])

    def get(self, sha256: str) -> tuple[Path, str] | None:
        """(file, content type) of a stored blob, or None (also for a malformed hash)."""
        if SHA256.fullmatch(sha256) is None:
            return None
        path = self._path(sha256)
        if not path.is_file():
            return None
        kind = path.with_suffix(".type")
        content_type = kind.read_text() if kind.is_file() else "application/octet-stream"
        return path, content_type

    def read(self, sha256: str) -> bytes | None:
        found = self.get(sha256)
        return None if found is None else found[0].read_bytes()

    def url(self, sha256: str) -> str:
        return f"{self.base_url}/files/{sha256}"

    def attachment(self, blob: Blob) -> conversation_pb2.Attachment:
        """The core's reference to a stored blob."""
        return conversation_pb2.Attachment(
            sha256=blob.sha256,
            name=blob.name,
            content_type=blob.content_type,
            size=blob.size,
            uri=self.url(blob.sha256),
        )
