"""Inbound e-mail, parsed: who wrote, which thread it answers, its readable text and its files.

``parse`` raises ``Malformed`` for bytes that are not a usable e-mail (no sender address). A
mail without a ``Message-ID`` gets a stable one derived from its bytes, so resending the same
mail is still recognised as a repeat.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser

import html2text

MAX_TEXT = 65_000
"""The core takes at most 65,536 characters of text; longer mails are cut to this."""

_ATTRIBUTION = re.compile(r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef)\s*:\s*$", re.I)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


class Malformed(ValueError):
    """Not a usable e-mail; the SMTP answer is a permanent 5xx."""


@dataclass(frozen=True, slots=True)
class File:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Mail:
    message_id: str
    """``<local@domain>``, as in the header."""
    sender: str
    """The From address, lower-cased: the customer's id on the channel."""
    sender_name: str
    subject: str
    text: str
    files: Sequence[File]
    in_reply_to: Sequence[str]
    references: Sequence[str]
    sent_at: dt.datetime | None
    automatic: bool
    """An auto-reply or other machine-made mail (RFC 3834): never answered."""

    @property
    def parents(self) -> list[str]:
        """Message-IDs this mail answers, nearest first (In-Reply-To, then References)."""
        seen: list[str] = []
        for mid in [*self.in_reply_to, *reversed(self.references)]:
            if mid not in seen:
                seen.append(mid)
        return seen


def message_ids(value: str | None) -> list[str]:
    return _MESSAGE_ID.findall(value or "")


def topic(subject: str) -> str:
    """The subject without its ``Re:`` prefixes."""
    return _REPLY_PREFIX.sub("", subject).strip()


def readable(html: str) -> str:
    """HTML as plain, unwrapped text (links kept as ``[text](url)``, images dropped)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    return converter.handle(html).strip()


def without_quote(text: str) -> str:
    """A reply without the quoted mail at its end (``>`` lines and their "On ... wrote:"
    line); the text unchanged when nothing would be left."""
    lines = text.split("\n")
    end = len(lines)
    while end and (lines[end - 1].startswith(">") or not lines[end - 1].strip()):
        end -= 1
    if end == len(lines):
        return text
    if end and _ATTRIBUTION.search(lines[end - 1]):
        end -= 1
        if end and lines[end - 1].lstrip().startswith("On ") and "wrote" not in lines[end - 1]:
            end -= 1  # the attribution wrapped onto two lines
    kept = "\n".join(lines[:end]).strip()
    return kept or text


def _content(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: decode what we can
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return content if isinstance(content, str) else ""


def _text(message: EmailMessage, *, reply: bool) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(body, EmailMessage):
        return ""
    content = _content(body)
    if body.get_content_type() == "text/html":
        content = readable(content)
    content = content.replace("\r\n", "\n").strip()
    if reply:
        content = without_quote(content)
    return content if len(content) <= MAX_TEXT else content[:MAX_TEXT] + "\n[…]"


def _files(message: EmailMessage) -> list[File]:
    files = []
    for part in message.iter_attachments():
        if not isinstance(part, EmailMessage):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):  # message/rfc822 and other containers: keep whole
            data = part.as_bytes()
        files.append(File(part.get_filename() or "", part.get_content_type(), data))
    return files


def _sent_at(message: EmailMessage) -> dt.datetime | None:
    try:
        at = email.utils.parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return None
    return at if at.tzinfo is not None else None


def parse(raw: bytes) -> Mail:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    name, address = email.utils.parseaddr(str(message.get("From", "")))
    local, _, domain = address.rpartition("@")
    if not local or not domain or any(c.isspace() for c in address):
        raise Malformed("no sender address in From")
    in_reply_to = message_ids(str(message.get("In-Reply-To", "")))
    references = message_ids(str(message.get("References", "")))
    ids = message_ids(str(message.get("Message-ID", "")))
    message_id = ids[0] if ids else f"<{hashlib.sha256(raw).hexdigest()}@usher.invalid>"
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return Mail(
        message_id=message_id,
        sender=address.lower(),
        sender_name=name.strip(),
        subject=str(message.get("Subject", "")).strip(),
        text=_text(message, reply=bool(in_reply_to or references)),
        files=_files(message),
        in_reply_to=in_reply_to,
        references=references,
        sent_at=_sent_at(message),
        automatic=auto not in ("", "no") or precedence in ("auto_reply", "bulk", "junk"),
    )
