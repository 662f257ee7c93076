"""Commands and outcomes as msgpack bytes for the Ray calls between front doors and shards.

Ray would otherwise cloudpickle every dataclass of a batch (and its nested values) on both ends;
msgspec encodes them in a fraction of the time. Each value travels as (type name, msgpack) so
the receiver decodes it with the type's own decoder; values are the engine's frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from core.routing import commands as c
from core.routing import effects as fx
from core.routing import events as ev
from core.routing.views import AgentView, ConversationView
from core.runtime.shard import Failure, Outcome


def _subclasses(cls: type[Any]) -> dict[str, type[Any]]:
    found: dict[str, type[Any]] = {}
    for sub in cls.__subclasses__():
        found[sub.__name__] = sub
        found.update(_subclasses(sub))
    return found


_COMMANDS: Final = _subclasses(c.Command)
_EVENTS: Final = _subclasses(ev.Event)
_EFFECTS: Final = _subclasses(fx.Effect)
_encoder: Final = msgspec.msgpack.Encoder()
_decoders: Final = {
    name: msgspec.msgpack.Decoder(cls) for name, cls in {**_COMMANDS, **_EVENTS, **_EFFECTS}.items()
}


class _OutcomeWire(msgspec.Struct, array_like=True, frozen=True):
    events: list[tuple[str, bytes]]
    effects: list[tuple[str, bytes]]
    first_id: int
    failure: tuple[str, str, dict[str, str]] | None
    conversation: ConversationView | None
    agent: AgentView | None


_outcomes: Final = msgspec.msgpack.Decoder(list[_OutcomeWire])
_commands: Final = msgspec.msgpack.Decoder(list[tuple[str, bytes]])


def _tagged(value: Any) -> tuple[str, bytes]:
    return type(value).__name__, _encoder.encode(value)


def _untagged(name: str, payload: bytes) -> Any:
    decoder = _decoders.get(name)
    if decoder is None:
        raise ValueError(f"unknown type {name!r} on the wire")
    return decoder.decode(payload)


def encode_commands(commands: Sequence[c.Command]) -> bytes:
    return _encoder.encode([_tagged(command) for command in commands])


def decode_commands(payload: bytes) -> list[c.Command]:
    return [_untagged(name, body) for name, body in _commands.decode(payload)]


def encode_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    return _encoder.encode(
        [
            _OutcomeWire(
                [_tagged(e) for e in o.events],
                [_tagged(e) for e in o.effects],
                o.first_id,
                None
                if o.failure is None
                else (o.failure.code, o.failure.message, dict(o.failure.details)),
                o.conversation,
                o.agent,
            )
            for o in outcomes
        ]
    )


def decode_outcomes(payload: bytes) -> list[Outcome]:
    return [
        Outcome(
            tuple(_untagged(name, body) for name, body in w.events),
            tuple(_untagged(name, body) for name, body in w.effects),
            w.first_id,
            None if w.failure is None else Failure(*w.failure),
            w.conversation,
            w.agent,
        )
        for w in _outcomes.decode(payload)
    ]
