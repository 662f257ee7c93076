"""A message's choices as the ``messages.choices`` JSON column holds them, and back.

The JSON is the engine's value as msgspec writes it: ``{"options": [{"id", "title",
"description"}], "style", "button_text", "header", "footer"}``. NULL is "no choices".
"""

from __future__ import annotations

import msgspec

from core.routing.model import MessageChoices

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(MessageChoices)


def to_json(choices: MessageChoices | None) -> str | None:
    return None if choices is None else _encoder.encode(choices).decode()


def from_json(text: str | bytes | None) -> MessageChoices | None:
    return None if text is None else _decoder.decode(text)
