"""Where a QR code leads: the target kinds, their checks, and the link each builds.

A target is a frozen value; ``problems`` lists what is wrong with one (field paths under the
target, as the API names them: ``whatsapp.phone_number``), and ``link`` builds the URL the
tracking link redirects to. The trigger phrase and the reference are what tie a conversation to
its code (``tie``).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

PHONE: Final = re.compile(r"\+[1-9][0-9]{4,14}")
LINE_ID: Final = re.compile(r"@[a-z0-9._-]{1,40}")
REFERENCE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_PHRASE: Final = 500
MAX_URL: Final = 2048
REFERENCE_PARAMETER: Final = "ref"
"""The query parameter a web chat page reads its reference from."""
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class WhatsApp:
    """``https://wa.me/{number}?text={trigger_phrase}``."""

    phone_number: str
    trigger_phrase: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """A LINE official account: a chat with the phrase typed in, or its add-friend link."""

    basic_id: str
    trigger_phrase: str = ""


@dataclass(frozen=True, slots=True)
class WebChat:
    """A web chat page opened with ``ref={reference}`` (empty reference: the code)."""

    page_url: str
    reference: str = ""


@dataclass(frozen=True, slots=True)
class Url:
    """Any https URL."""

    url: str


Target = WhatsApp | Line | WebChat | Url

KINDS: Final[dict[type, str]] = {
    WhatsApp: "whatsapp",
    Line: "line",
    WebChat: "web_chat",
    Url: "url",
}


def kind_of(target: Target) -> str:
    return KINDS[type(target)]


def _phrase_problem(phrase: str) -> str | None:
    if len(phrase) > MAX_PHRASE or _CONTROL.search(phrase):
        return f"at most {MAX_PHRASE} characters, no control characters but line breaks"
    if phrase and not phrase.strip():
        return "not only spaces"
    return None


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    shown = " or ".join(f"{s}://" for s in schemes)
    if len(url) > MAX_URL or _CONTROL.search(url) or " " in url:
        return f"a URL of at most {MAX_URL} characters without spaces"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        return f"a {shown} URL with a host"
    return None


def problems(target: Target) -> dict[str, str]:
    """What is wrong with ``target``, by field path under it (empty: nothing)."""
    kind = kind_of(target)
    found: dict[str, str] = {}
    if isinstance(target, WhatsApp):
        if not PHONE.fullmatch(target.phone_number):
            found[f"{kind}.phone_number"] = "an E.164 phone number (like +85291234567)"
    elif isinstance(target, Line):
        if not LINE_ID.fullmatch(target.basic_id):
            found[f"{kind}.basic_id"] = "@ and 1 to 40 of a-z0-9._- (like @123abcde)"
    elif isinstance(target, WebChat):
        problem = _url_problem(target.page_url, ("https", "http"))
        if problem:
            found[f"{kind}.page_url"] = problem
        if target.reference and not REFERENCE.fullmatch(target.reference):
            found[f"{kind}.reference"] = "1 to 64 of A-Za-z0-9_.-"
    else:
        problem = _url_problem(target.url, ("https",))
        if problem:
            found[f"{kind}.url"] = problem
    if isinstance(target, WhatsApp | Line):
        problem = _phrase_problem(target.trigger_phrase)
        if problem:
            found[f"{kind}.trigger_phrase"] = problem
    return found


@dataclass(frozen=True, slots=True)
class Tie:
    """What ties a conversation to a code: the first customer message equal to ``phrase``
    (trimmed, any case), or the conversation's ``reference``."""

    phrase: str = ""
    reference: str = ""


def tie(target: Target, code: str) -> Tie:
    if isinstance(target, WhatsApp | Line):
        return Tie(phrase=target.trigger_phrase.strip())
    if isinstance(target, WebChat):
        return Tie(reference=target.reference or code)
    return Tie()


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def link(target: Target, code: str) -> str:
    """The URL the code's tracking link redirects to (``target`` checked by ``problems``)."""
    if isinstance(target, WhatsApp):
        url = f"https://wa.me/{target.phone_number.removeprefix('+')}"
        return f"{url}?text={_quote(target.trigger_phrase)}" if target.trigger_phrase else url
    if isinstance(target, Line):
        if target.trigger_phrase:
            return (
                f"https://line.me/R/oaMessage/{_quote(target.basic_id)}/"
                f"?{_quote(target.trigger_phrase)}"
            )
        return f"https://line.me/R/ti/p/{_quote(target.basic_id)}"
    if isinstance(target, WebChat):
        parts = urllib.parse.urlsplit(target.page_url)
        query = [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if k != REFERENCE_PARAMETER
        ]
        query.append((REFERENCE_PARAMETER, target.reference or code))
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return target.url


def to_document(target: Target) -> dict[str, str]:
    """``target``'s fields as stored (JSON), without its kind."""
    if isinstance(target, WhatsApp):
        return {"phone_number": target.phone_number, "trigger_phrase": target.trigger_phrase}
    if isinstance(target, Line):
        return {"basic_id": target.basic_id, "trigger_phrase": target.trigger_phrase}
    if isinstance(target, WebChat):
        return {"page_url": target.page_url, "reference": target.reference}
    return {"url": target.url}


def from_document(kind: str, document: dict[str, str]) -> Target:
    """The target stored as ``kind`` and ``to_document``'s fields."""
    if kind == "whatsapp":
        return WhatsApp(document["phone_number"], document.get("trigger_phrase", ""))
    if kind == "line":
        return Line(document["basic_id"], document.get("trigger_phrase", ""))
    if kind == "web_chat":
        return WebChat(document["page_url"], document.get("reference", ""))
    return Url(document["url"])
