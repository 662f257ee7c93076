"""Phone numbers to E.164 (``+85291234567``), the form customers are stored under."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """Not a phone number (or not a possible one for its region)."""


def to_e164(raw: str, default_region: str | None = None) -> str:
    """``raw`` as E.164. Numbers without ``+`` need ``default_region`` (ISO 3166, e.g. ``HK``);
    WhatsApp's bare international digits (``85291234567``) are read as if prefixed by ``+``."""
    text = raw.strip()
    if text.startswith("whatsapp:"):
        text = text.removeprefix("whatsapp:")
    if default_region is None and text.isdigit():
        text = "+" + text
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{raw!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
