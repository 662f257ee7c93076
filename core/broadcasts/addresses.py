"""Where a broadcast reaches a recipient on each channel type, in one canonical form per type,
so that duplicates, opt-outs and blocks compare equal: SMS and WhatsApp an E.164 phone
(``+85291234567``; a WhatsApp id is the number without its ``+``), e-mail the address in lower
case, LINE the user id as LINE gives it. Pure."""

from __future__ import annotations

from typing import Final

import phonenumbers

from core.store.customer_fields import EMAIL
from core.store.validation import PHONE_PATTERN

PHONE_TYPES: Final = frozenset({"sms", "whatsapp"})
MAX_ADDRESS: Final = 320


class InvalidAddress(ValueError):
    """Not an address of the channel type (the message says why)."""


def phone(raw: str, default_region: str = "") -> str:
    """``raw`` as E.164. Without a ``+`` it needs ``default_region`` (ISO 3166, ``HK``);
    ``InvalidAddress`` when it is not a possible number."""
    text = raw.strip()
    if not text:
        raise InvalidAddress("no phone number")
    try:
        number = phonenumbers.parse(text, default_region.upper() or None)
    except phonenumbers.NumberParseException:
        hint = (
            "" if text.startswith("+") or default_region else " (start it with + or give a region)"
        )
        raise InvalidAddress(f"not a phone number{hint}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidAddress("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(raw: str) -> str:
    """``raw`` in lower case; ``InvalidAddress`` when it is not an e-mail address."""
    text = raw.strip().lower()
    if len(text) > MAX_ADDRESS or EMAIL.fullmatch(text) is None:
        raise InvalidAddress("not an e-mail address")
    return text


def line_user(raw: str) -> str:
    """A LINE user id (``U`` and 32 hex digits); ``InvalidAddress`` otherwise."""
    text = raw.strip()
    if len(text) != 33 or text[0] != "U" or any(c not in "0123456789abcdef" for c in text[1:]):
        raise InvalidAddress("not a LINE user id (U and 32 hex digits)")
    return text


def from_external_id(channel_type: str, external_id: str) -> str:
    """A customer's channel identity as an address (a WhatsApp id gains its ``+``); the id as
    it is when it is not of the expected form."""
    text = external_id.strip()
    if channel_type in PHONE_TYPES:
        candidate = text if text.startswith("+") else f"+{text}"
        return candidate if PHONE_PATTERN.fullmatch(candidate) else text
    if channel_type == "email":
        return text.lower()
    return text


def customer_address(
    channel_type: str, *, identity: str | None, phone_number: str | None, email_address: str | None
) -> str | None:
    """A customer's address on a channel: their identity on that channel if they wrote there,
    else their phone (SMS, WhatsApp) or e-mail; None when there is none (a LINE user id comes
    only from the customer having written to the LINE account)."""
    if identity:
        return from_external_id(channel_type, identity)
    if channel_type in PHONE_TYPES and phone_number and PHONE_PATTERN.fullmatch(phone_number):
        return phone_number
    if channel_type == "email" and email_address:
        return email_address.strip().lower() or None
    return None
