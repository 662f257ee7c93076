"""Message choices between the wire (``usher.v1.MessageChoices``) and the engine
(``core.routing.model.MessageChoices``), checked whole at the door.

The edge's limits (``core.api.validation.limits``) bound each string; here come the rules that
span fields (1 to 10 options, ids unique, titles not blank), checked again for callers that
bypass the server. Channel rules (WhatsApp's 3 buttons, 20-character titles) are the gateways'.
"""

from __future__ import annotations

from google.protobuf.message import Message
from usher.v1 import conversation_pb2

from core.api.validation import forms
from core.api.validation.limits import (
    MAX_CHOICES_BUTTON,
    MAX_CHOICES_LINE,
    MAX_OPTION_DESCRIPTION,
    MAX_OPTION_TITLE,
    MAX_OPTIONS,
)
from core.routing import model as m
from core.routing.errors import InvalidArgument

_STYLES = {
    conversation_pb2.CHOICE_STYLE_UNSPECIFIED: m.ChoiceStyle.AUTO,
    conversation_pb2.CHOICE_STYLE_BUTTONS: m.ChoiceStyle.BUTTONS,
    conversation_pb2.CHOICE_STYLE_LIST: m.ChoiceStyle.LIST,
}
_PROTO_STYLES = {style: value for value, style in _STYLES.items()}


def _line(text: str, limit: int, field: str, *, required: bool = False) -> str:
    if required and not text.strip():
        raise InvalidArgument("required", field=field)
    if len(text) > limit or (text and not forms.LINE.accepts(text)):
        raise InvalidArgument(f"one line of at most {limit} characters", field=field)
    return text


def option_id(value: str, field: str) -> str:
    """An option id (``MessageOption.id``, ``selected_option_id``): the ID form, or empty."""
    if value and not forms.ID.accepts(value):
        raise InvalidArgument(f"must be {forms.ID.expected}", field=field)
    return value


def from_proto(
    choices: conversation_pb2.MessageChoices, field: str = "choices"
) -> m.MessageChoices:
    """The engine's value of wire choices; ``InvalidArgument`` naming the first bad field."""
    count = len(choices.options)
    if not 1 <= count <= MAX_OPTIONS:
        raise InvalidArgument(f"1 to {MAX_OPTIONS} options", field=f"{field}.options")
    style = _STYLES.get(choices.style)
    if style is None:
        raise InvalidArgument("a ChoiceStyle value", field=f"{field}.style")
    options = []
    seen: set[str] = set()
    for i, o in enumerate(choices.options):
        where = f"{field}.options[{i}]"
        if not o.id:
            raise InvalidArgument("required", field=f"{where}.id")
        option_id(o.id, f"{where}.id")
        if o.id in seen:
            raise InvalidArgument("unique within the message", field=f"{where}.id")
        seen.add(o.id)
        title = _line(o.title, MAX_OPTION_TITLE, f"{where}.title", required=True)
        description = _line(o.description, MAX_OPTION_DESCRIPTION, f"{where}.description")
        options.append(m.MessageOption(o.id, title, description))
    return m.MessageChoices(
        options=tuple(options),
        style=style,
        button_text=_line(choices.button_text, MAX_CHOICES_BUTTON, f"{field}.button_text"),
        header=_line(choices.header, MAX_CHOICES_LINE, f"{field}.header"),
        footer=_line(choices.footer, MAX_CHOICES_LINE, f"{field}.footer"),
    )


def to_proto(choices: m.MessageChoices) -> conversation_pb2.MessageChoices:
    return conversation_pb2.MessageChoices(
        style=_PROTO_STYLES[choices.style],
        options=[
            conversation_pb2.MessageOption(id=o.id, title=o.title, description=o.description)
            for o in choices.options
        ],
        button_text=choices.button_text,
        header=choices.header,
        footer=choices.footer,
    )


def of_request(request: Message, field: str = "choices") -> m.MessageChoices | None:
    """The choices a request carries (its ``choices`` field, when set), checked."""
    if not request.HasField(field):
        return None
    found: conversation_pb2.MessageChoices = getattr(request, field)
    return from_proto(found, field)
