"""Choices in a bot's or agent's message, and the customer's pick coming back.

Usher's ``Message`` has no field for options, so they ride in the text: trailing lines of the
form ``[[id|Title]]``, ``[[Title]]`` (the id is the title) or ``[[id|Title|Description]]``::

    How can we help?
    [[billing|Billing]]
    [[tech|Technical support]]

The gateway sends such a message as reply buttons (up to three short titles) or a list (up to
ten), and a customer's pick comes back as its title, followed by ``[[id]]`` on a line of its own
when the id differs from the title. Channels without buttons show the lines as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPTION = re.compile(r"\[\[([^\[\]|]+)(?:\|([^\[\]|]+))?(?:\|([^\[\]|]*))?\]\]")


@dataclass(frozen=True, slots=True)
class Option:
    id: str
    title: str
    description: str = ""


def split_options(text: str) -> tuple[str, list[Option]]:
    """The text before its trailing option lines, and the options in order."""
    lines = text.rstrip().split("\n")
    options: list[Option] = []
    while lines:
        matched = _OPTION.fullmatch(lines[-1].strip())
        if matched is None:
            break
        first, second, description = (part.strip() if part else "" for part in matched.groups())
        options.append(Option(first, second or first, description or ""))
        lines.pop()
    options.reverse()
    return "\n".join(lines).rstrip(), options


def picked(option_id: str, title: str) -> str:
    """The text a customer's pick is stored as (see the module docstring)."""
    title, option_id = title.strip(), option_id.strip()
    if not option_id or option_id == title:
        return title
    return f"{title}\n[[{option_id}]]"
