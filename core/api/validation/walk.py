"""Check a request against ``LIMITS`` by walking its descriptor: ``violations(request)``.

Every field of every message reached is checked, declared or not (undeclared fields get the
defaults of ``core.api.validation.limits``). Field paths are the proto names joined by dots, with
``[i]`` for a repeated entry and ``[key]`` for a map entry whose key is itself valid
(``first_message.attachments[3].uri``). Descriptions say what is expected and never quote the
value. The walk stops after ``MAX_VIOLATIONS``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from core.api.validation import forms
from core.api.validation.limits import (
    DEFAULT,
    DEFAULT_HIGH,
    DEFAULT_LOW,
    DEFAULT_MAX_DURATION,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_LEN,
    EARLIEST_TIME,
    LATEST_TIME,
    LIMITS,
    MAX_FIELD_MASK_PATHS,
    Limit,
)

MAX_VIOLATIONS: Final = 20
_NANOS: Final = 999_999_999
_INTEGERS: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOATS: Final = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


@dataclass(frozen=True, slots=True)
class Violation:
    """One bad field: its path in the request and what it should be."""

    field: str
    description: str


class _Full(Exception):
    """Enough violations found: stop walking."""


class _Found:
    def __init__(self) -> None:
        self.items: list[Violation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(Violation(field, description))
        if len(self.items) >= MAX_VIOLATIONS:
            raise _Full


def violations(request: Message) -> list[Violation]:
    """The fields of ``request`` that break their limits (empty: the request may proceed)."""
    found = _Found()
    with contextlib.suppress(_Full):
        _message(request, "", found)
    return found.items


def limit_of(field: FieldDescriptor) -> Limit:
    """The declared limit of ``field``, or ``DEFAULT`` (the type's defaults apply)."""
    return LIMITS.get(field.full_name, DEFAULT)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _message(message: Message, path: str, found: _Found) -> None:
    descriptor: Any = message.DESCRIPTOR  # upb and pure-Python descriptors share no base
    special = _WELL_KNOWN.get(descriptor.full_name)
    if special is not None:
        special(message, path, DEFAULT, found)
        return
    for field in descriptor.fields:
        _field(message, field, _join(path, field.name), found)


def _field(message: Message, field: FieldDescriptor, path: str, found: _Found) -> None:
    limit = limit_of(field)
    value: Any = getattr(message, field.name)
    if field.is_repeated:
        max_items = DEFAULT_MAX_ITEMS if limit.max_items is None else limit.max_items
        if len(value) > max_items:
            found.add(path, f"at most {max_items} entries")
            return
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            _map(value, entry, path, found)
            return
        for i, item in enumerate(value):
            _value(item, field, limit, f"{path}[{i}]", found)
        return
    if field.message_type is not None:
        if message.HasField(field.name):
            _value(value, field, limit, path, found)
        return
    _value(value, field, limit, path, found)


def _map(value: Any, entry: Descriptor, path: str, found: _Found) -> None:
    key_field = entry.fields_by_name["key"]
    value_field = entry.fields_by_name["value"]
    for key in value:
        before = len(found.items)
        _value(key, key_field, limit_of(key_field), f"{path}.key", found)
        where = f"{path}[{key}]" if len(found.items) == before else path
        _value(value[key], value_field, limit_of(value_field), where, found)


def _value(value: Any, field: FieldDescriptor, limit: Limit, path: str, found: _Found) -> None:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        _text(value, limit, path, found)
    elif kind == FieldDescriptor.TYPE_BYTES:
        max_len = DEFAULT_MAX_LEN if limit.max_len is None else limit.max_len
        if len(value) > max_len:
            found.add(path, f"at most {max_len} bytes")
    elif kind in _INTEGERS or kind in _FLOATS:
        _number(value, kind in _FLOATS, limit, path, found)
    elif kind == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        if enum is not None and enum.values_by_number.get(value) is None:
            found.add(path, f"must be one of the values of {enum.full_name}")
    elif kind == FieldDescriptor.TYPE_MESSAGE:
        special = _WELL_KNOWN.get(field.message_type.full_name if field.message_type else "")
        if special is not None:
            special(value, path, limit, found)
        else:
            _message(value, path, found)


def _text(value: str, limit: Limit, path: str, found: _Found) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        found.add(path, "must be valid UTF-8")
        return
    if "\x00" in value:
        found.add(path, "must not contain a NUL character")
        return
    max_len = DEFAULT_MAX_LEN if limit.max_len is None else limit.max_len
    if not limit.min_len <= len(value) <= max_len:
        found.add(path, f"must have {limit.min_len} to {max_len} characters")
        return
    if value and limit.form is not None and not limit.form.accepts(value):
        found.add(path, f"must be {limit.form.expected}")


def _number(value: float, floating: bool, limit: Limit, path: str, found: _Found) -> None:
    if floating and not math.isfinite(value):
        found.add(path, "must be a finite number")
        return
    low = DEFAULT_LOW if limit.low is None else limit.low
    high = DEFAULT_HIGH if limit.high is None else limit.high
    if not low <= value <= high:
        found.add(path, f"must be within {low:g}..{high:g}")


def _timestamp(value: Any, path: str, limit: Limit, found: _Found) -> None:
    low = EARLIEST_TIME if limit.low is None else limit.low
    high = LATEST_TIME if limit.high is None else limit.high
    if not 0 <= value.nanos <= _NANOS or not low <= value.seconds <= high:
        found.add(path, "must be a time between 1970-01-01 and 2199-12-31")


def _duration(value: Any, path: str, limit: Limit, found: _Found) -> None:
    low = 0 if limit.low is None else limit.low
    high = DEFAULT_MAX_DURATION if limit.high is None else limit.high
    seconds, nanos = value.seconds, value.nanos
    if not -_NANOS <= nanos <= _NANOS or (seconds > 0 > nanos) or (seconds < 0 < nanos):
        found.add(path, "is not a valid duration")
        return
    if not low <= seconds + nanos / 1e9 <= high:
        found.add(path, f"must be {low:g} to {high:g} seconds")


def _field_mask(value: Any, path: str, limit: Limit, found: _Found) -> None:
    paths = list(value.paths)
    if len(paths) > MAX_FIELD_MASK_PATHS:
        found.add(f"{path}.paths", f"at most {MAX_FIELD_MASK_PATHS} entries")
        return
    for i, item in enumerate(paths):
        if not forms.FIELD_PATH.accepts(item):
            found.add(f"{path}.paths[{i}]", f"must be {forms.FIELD_PATH.expected}")


_WELL_KNOWN: Final = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _duration,
    "google.protobuf.FieldMask": _field_mask,
}
"""Messages checked as the values they stand for rather than field by field."""
