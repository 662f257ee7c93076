"""A canned reply's text with variables, parsed when the reply is saved and rendered for a
conversation. Pure: no I/O.

Syntax: ``{customer.name}``, ``{customer.phone}``, ``{customer.email}``, ``{agent.name}`` and
``{customer.fields.KEY}`` (a custom field's key, ``core.store.customer_fields``), with spaces
allowed inside the braces; ``{{`` and ``}}`` stand for literal braces. Anything else in braces,
and a brace left alone, is refused by ``parse`` (``TemplateError`` listing each problem), so an
unknown variable never reaches a customer.

Rendering substitutes plain strings: no attribute access, no format specs or conversions
(``str.format`` is never used), and a value is never parsed again, so a customer named
``{agent.name}`` is shown as typed. A variable without a value (an unknown customer, a field
the customer has not filled in or the tenant has since removed) renders as the empty string
and is reported in ``Rendered.missing``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from core.store.customer_fields import KEY_PATTERN

BUILT_IN: Final = ("customer.name", "customer.phone", "customer.email", "agent.name")
"""The variables every tenant has."""
FIELD_PREFIX: Final = "customer.fields."
MAX_VARIABLES: Final = 100
"""Variables one text may hold at most."""
_QUOTED: Final = 40
_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(ValueError):
    """The text is not a valid template; ``problems`` says why, one entry per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``{name}`` in the text."""

    name: str


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed text: literal strings and variables, in order."""

    parts: tuple[str | Variable, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        """The distinct variable names, in order of first use."""
        return tuple(dict.fromkeys(p.name for p in self.parts if isinstance(p, Variable)))


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    missing: tuple[str, ...]
    """Variables that had no value (rendered as empty), in order of first use."""


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _QUOTED else text[: _QUOTED - 1] + "\u2026")


def known(
    name: str, field_keys: Collection[str] | None, built_in: Collection[str] = BUILT_IN
) -> bool:
    """Whether ``name`` is a variable: one of ``built_in``, or a custom field in ``field_keys``
    (None: any well-formed key, for reading texts saved earlier)."""
    if name in built_in:
        return True
    key = name.removeprefix(FIELD_PREFIX)
    if key == name or KEY_PATTERN.fullmatch(key) is None:
        return False
    return field_keys is None or key in field_keys


def parse(
    text: str, field_keys: Collection[str] | None = (), built_in: Collection[str] = BUILT_IN
) -> Template:
    """``text`` as a template whose variables are ``built_in`` ones (canned replies' by default;
    broadcasts name their own) or custom fields of ``field_keys`` (None: any well-formed key);
    ``TemplateError`` listing every problem otherwise."""
    parts: list[str | Variable] = []
    problems: list[str] = []
    literal: list[str] = []
    count = 0
    at = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[at : match.start()])
        at = match.end()
        token = match[0]
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        if match[1] is None:
            problems.append(
                f"a lone {token!r} at character {match.start()}: write {token * 2!r} for the"
                " brace itself"
            )
            continue
        name = match[1].strip()
        if not known(name, field_keys, built_in):
            problems.append(f"unknown variable {_quoted(name)}")
            continue
        count += 1
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Variable(name))
    literal.append(text[at:])
    if "".join(literal):
        parts.append("".join(literal))
    if count > MAX_VARIABLES:
        problems.append(f"at most {MAX_VARIABLES} variables")
    if problems:
        raise TemplateError(problems)
    return Template(tuple(parts))


def render(template: Template, values: Mapping[str, str]) -> Rendered:
    """The text with each variable replaced by its value in ``values`` (missing or empty: the
    empty string, and named in ``missing``)."""
    out: list[str] = []
    missing: dict[str, None] = {}
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = values.get(part.name, "")
        if not value:
            missing[part.name] = None
        out.append(value)
    return Rendered("".join(out), tuple(missing))
