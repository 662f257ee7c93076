"""Syntaxes a string field can be required to have (``Form``), each a predicate and a short
description for a field violation (the description never quotes the value)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import email_validator
import langcodes
import phonenumbers


@dataclass(frozen=True, slots=True)
class Form:
    """A syntax: ``accepts(text)`` for a non-empty value; ``expected`` completes "must be ..."."""

    expected: str
    accepts: Callable[[str], bool]


def _matching(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda text: compiled.fullmatch(text) is not None


ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
"""A resource id (agents, queues, skills, departments, channels, credentials, offers,
transfers, conversations) and channel names, regions: 1 to 64 of ``A-Za-z0-9_.-``."""
MESSAGE_ID_PATTERN: Final = r"[1-9][0-9]{0,17}"
"""A message id: a positive decimal that fits a PostgreSQL bigint."""

ID: Final = Form(f"1 to 64 of A-Za-z0-9_.- (matching {ID_PATTERN})", _matching(ID_PATTERN))


def resource(collection: str) -> Form:
    """``{collection}/{id}`` with an ``ID_PATTERN`` id."""
    return Form(
        f"a {collection}/{{id}} name (id: 1 to 64 of A-Za-z0-9_.-)",
        _matching(f"{re.escape(collection)}/{ID_PATTERN}"),
    )


MESSAGE_NAME: Final = Form(
    "a conversations/{c}/messages/{m} name (m: a positive 64-bit integer)",
    _matching(f"conversations/{ID_PATTERN}/messages/{MESSAGE_ID_PATTERN}"),
)

_BCP47: Final = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def _language(text: str) -> bool:
    return _BCP47.fullmatch(text) is not None and langcodes.tag_is_valid(text)


LANGUAGE: Final = Form("a BCP 47 language tag (like en, zh-Hant-HK)", _language)

_E164: Final = re.compile(r"\+[1-9][0-9]{4,14}")


def _phone(text: str) -> bool:
    if _E164.fullmatch(text) is None:
        return False
    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse(text, None)))
    except phonenumbers.NumberParseException:
        return False


PHONE: Final = Form("an E.164 phone number (like +85291234567)", _phone)


def _email(text: str) -> bool:
    try:
        email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


EMAIL: Final = Form("an e-mail address", _email)

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
LINE: Final = Form("one line of text without control characters", lambda t: not _CONTROL.search(t))
"""Display names, labels: no control characters (a line break, a tab, an escape)."""

TIME_OF_DAY: Final = Form(
    "an HH:MM time of day", _matching(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")
)
DATE: Final = Form("a YYYY-MM-DD date", _matching(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"))
TIME_ZONE: Final = Form("an IANA time zone name", _matching(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}"))
SHA256: Final = Form("64 hexadecimal digits", _matching(r"[0-9a-fA-F]{64}"))
MEDIA_TYPE: Final = Form(
    "a media type (like image/png)",
    _matching(
        r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
        r"(?:\s*;[^\x00-\x1f\x7f]*)?"
    ),
)
URI: Final = Form(
    "an absolute URI (like https://host/path)", _matching(r"[A-Za-z][A-Za-z0-9+.-]{0,31}:[^\s]+")
)
FIELD_PATH: Final = Form("a field path (like display_name)", _matching(r"[a-z_][a-z0-9_.]{0,99}"))
