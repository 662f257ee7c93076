"""Notes' protos <-> the store's values: the files a note keeps (``usher.v1.Attachment`` <->
``core.store.note_files.NoteFile``) and a conversation's note. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence

from usher.v1 import conversation_pb2

from core.api.convert import conversation_name, timestamp
from core.store.conversation_notes import ConversationNote
from core.store.note_files import NoteFile


def files_from_proto(items: Sequence[conversation_pb2.Attachment]) -> tuple[NoteFile, ...]:
    """A note's files as the request gave them (the store checks them)."""
    return tuple(
        NoteFile(
            name=a.name,
            content_type=a.content_type,
            size=a.size,
            uri=a.uri,
            sha256=a.sha256.lower(),
        )
        for a in items
    )


def files_to_proto(files: Sequence[NoteFile]) -> list[conversation_pb2.Attachment]:
    return [
        conversation_pb2.Attachment(
            name=f.name, content_type=f.content_type, size=f.size, uri=f.uri, sha256=f.sha256
        )
        for f in files
    ]


def conversation_note_to_proto(n: ConversationNote) -> conversation_pb2.Note:
    """A conversation's note; an author stored as a bare agent id reads ``agents/{id}``."""
    return conversation_pb2.Note(
        name=f"{conversation_name(n.conversation_id)}/notes/{n.note_id}",
        author=n.author if "/" in n.author else f"agents/{n.author}",
        text=n.body,
        create_time=timestamp(n.created_at),
        attachments=files_to_proto(n.files),
    )
