"""Customer fields as a bot reads and writes them: a customer's free-text answer becomes a typed
value by the same rules every other writer uses (``core.store.customer_fields``). Pure.

A bot may fill the tenant's custom fields and a few built-in columns of the customer's record
(``BUILT_IN``). Which field a step names, and its type, is resolved when the bot is saved
(``specs``), so a served flow needs no lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from core.bots.flow import FieldSpec, FieldValue

if TYPE_CHECKING:
    from core.store.customer_fields import FieldDef

# ``core.store.customer_fields`` is imported where it is used: the engine's events name the
# interpreter's values (``core.routing.events``), and importing ``core.store`` from there would
# import the event log, which imports the engine's events.

BUILT_IN: Final[Mapping[str, str]] = {
    "display_name": "text",
    "phone": "phone",
    "email": "email",
    "company": "text",
    "address": "text",
}
"""Columns of the customer's record a bot may fill, with the type their values follow."""
MAX_BUILT_IN_TEXT: Final = 200


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why an answer is not a value of its field."""

    reason: str


def specs(custom: Iterable[tuple[str, str, tuple[str, ...]]]) -> dict[str, FieldSpec]:
    """The fields a bot may name: ``BUILT_IN`` and the tenant's custom fields given as
    (key, type, choices)."""
    found = {key: FieldSpec(key=key, type=kind) for key, kind in BUILT_IN.items()}
    for key, kind, choices in custom:
        found[key] = FieldSpec(key=key, type=kind, choices=choices)
    return found


def _definition(spec: FieldSpec) -> FieldDef:
    from core.store.customer_fields import FieldDef

    return FieldDef(key=spec.key, type=spec.type, choices=spec.choices)


def check(spec: FieldSpec, value: FieldValue) -> str | None:
    """What is wrong with ``value`` for ``spec``, or None."""
    from core.store.customer_fields import check_value

    if not spec.type:
        return "no such customer field"
    problem = check_value(_definition(spec), value)
    too_long = isinstance(value, str) and len(value) > MAX_BUILT_IN_TEXT
    if problem is None and spec.key in BUILT_IN and too_long:
        return f"at most {MAX_BUILT_IN_TEXT} characters"
    return problem


def _canonical_choice(spec: FieldSpec, text: str) -> str:
    """``text`` as the choice it names ignoring case, else unchanged."""
    folded = text.strip().casefold()
    for choice in spec.choices:
        if choice.casefold() == folded:
            return choice
    return text.strip()


def parse_answer(spec: FieldSpec, text: str) -> FieldValue | Invalid:
    """A customer's text as a value of ``spec`` (a number, yes/no, a date, a choice named
    ignoring case, several choices separated by ``;`` or ``,``), or ``Invalid``."""
    text = text.strip()
    if not text:
        return Invalid("empty")
    value: FieldValue
    if spec.type == "single_choice":
        value = _canonical_choice(spec, text)
    elif spec.type == "multiple_choice":
        parts = text.replace(",", ";").split(";")
        value = tuple(_canonical_choice(spec, p) for p in parts if p.strip())
    else:
        from core.store.customer_fields import parse_text

        try:
            value = parse_text(_definition(spec), text)
        except ValueError:
            return Invalid(f"not a {spec.type} value")
    problem = check(spec, value)
    return value if problem is None else Invalid(problem)


def as_text(value: FieldValue) -> str:
    """A value as text for comparisons and webhooks (``true``, ``12``, ``a;b``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, tuple):
        return ";".join(value)
    return value
