"""Engine events to and from JSON for the event log (``events.type`` + ``events.payload``)."""

from __future__ import annotations

import msgspec

from core.routing import events as ev


def _subclasses(cls: type[ev.Event]) -> list[type[ev.Event]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


EVENT_TYPES: dict[str, type[ev.Event]] = {cls.__name__: cls for cls in _subclasses(ev.Event)}
_encoder = msgspec.json.Encoder()
_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


def encode(event: ev.Event) -> tuple[str, str]:
    """(type name, JSON text) of an event."""
    return type(event).__name__, _encoder.encode(event).decode()


def decode(type_name: str, payload: str | bytes) -> ev.Event:
    decoder = _decoders.get(type_name)
    if decoder is None:
        raise ValueError(f"unknown event type {type_name!r} in the event log")
    event: ev.Event = decoder.decode(payload)
    return event
