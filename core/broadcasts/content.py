"""What a broadcast says, checked against its channel and rendered per recipient. Pure.

A broadcast's texts (SMS, LINE and e-mail ``text``, the e-mail ``subject``, each WhatsApp
template parameter) are templates of the canned replies' safe renderer
(``core.store.canned_templates``) with the variables ``BUILT_IN`` and
``{customer.fields.KEY}``. ``compile`` checks everything the channel needs and every variable
at once (``Violations`` naming each field); ``render`` fills in one recipient's values. The
``link`` (a bot link or QR target) is the ``{broadcast.link}`` variable; a text that does not
use it gets it on a line of its own at the end (not a WhatsApp template: Meta approved its
wording).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from core.store import canned_templates as templates
from core.store.customer_fields import Violations

CHANNEL_TYPES: Final = ("whatsapp", "line", "sms", "email")
"""Channel types that can broadcast (web chat cannot: nobody to reach)."""
LINK: Final = "broadcast.link"
BUILT_IN: Final = ("customer.name", "customer.phone", "customer.email", LINK)
MAX_TEXT: Final = 4_000
MAX_SUBJECT: Final = 200
MAX_LINK: Final = 1_000
MAX_PARAMETERS: Final = 20
MAX_PARAMETER: Final = 1_024
MAX_TEMPLATE_NAME: Final = 512
MAX_LANGUAGE: Final = 15
SMS_PIECE: Final = 1_600
"""Characters per Twilio message: the SMS gateway sends a longer text in several."""
LINE_TEXT: Final = 5_000
"""LINE's limit of a text message."""


@dataclass(frozen=True, slots=True)
class Content:
    """A broadcast's content as its author wrote it (``parameters``: WhatsApp's)."""

    text: str = ""
    subject: str = ""
    template_name: str = ""
    template_language: str = ""
    parameters: tuple[str, ...] = ()
    link: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "subject": self.subject,
            "template_name": self.template_name,
            "template_language": self.template_language,
            "parameters": list(self.parameters),
            "link": self.link,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Content:
        return cls(
            text=str(raw.get("text", "")),
            subject=str(raw.get("subject", "")),
            template_name=str(raw.get("template_name", "")),
            template_language=str(raw.get("template_language", "")),
            parameters=tuple(str(p) for p in raw.get("parameters", ())),
            link=str(raw.get("link", "")),
        )


@dataclass(frozen=True, slots=True)
class Compiled:
    """A content's parsed templates, ready to render many times."""

    channel_type: str
    content: Content
    text: templates.Template | None
    subject: templates.Template | None
    parameters: tuple[templates.Template, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable used, in order of first use."""
        parts = [self.text, self.subject, *self.parameters]
        return tuple(dict.fromkeys(v for t in parts if t is not None for v in t.variables))


@dataclass(frozen=True, slots=True)
class Rendered:
    """One recipient's message."""

    text: str = ""
    subject: str = ""
    parameters: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    """Variables without a value (rendered empty)."""

    @property
    def shown(self) -> str:
        """The text people read in lists (WhatsApp: the parameters, a line each)."""
        return self.text if not self.parameters else "\n".join(self.parameters)


def _parse(
    text: str, field: str, field_keys: Collection[str], problems: dict[str, str]
) -> templates.Template | None:
    try:
        return templates.parse(text, field_keys, BUILT_IN)
    except templates.TemplateError as exc:
        problems[field] = "; ".join(exc.problems)
        return None


def _bounded(value: str, field: str, limit: int, problems: dict[str, str]) -> None:
    if len(value) > limit:
        problems[field] = f"at most {limit} characters"


def compile_content(
    content: Content, channel_type: str, field_keys: Collection[str], prefix: str = ""
) -> Compiled:
    """``content`` checked for a ``channel_type`` channel (one of ``CHANNEL_TYPES``) and the
    tenant's custom fields ``field_keys``; ``Violations`` naming each problem's field (under
    ``prefix``) otherwise."""
    problems: dict[str, str] = {}
    _bounded(content.link, f"{prefix}link", MAX_LINK, problems)
    if channel_type not in CHANNEL_TYPES:
        raise ValueError(f"a {channel_type} channel cannot broadcast")  # the caller checks
    text = subject = None
    parameters: list[templates.Template] = []
    if channel_type == "whatsapp":
        if content.text or content.subject:
            problems[f"{prefix}text"] = "WhatsApp broadcasts are templates: use whatsapp_template"
        if not content.template_name:
            problems[f"{prefix}whatsapp_template.name"] = "required"
        _bounded(
            content.template_name, f"{prefix}whatsapp_template.name", MAX_TEMPLATE_NAME, problems
        )
        if not content.template_language:
            problems[f"{prefix}whatsapp_template.language"] = "required"
        _bounded(
            content.template_language, f"{prefix}whatsapp_template.language", MAX_LANGUAGE, problems
        )
        if len(content.parameters) > MAX_PARAMETERS:
            problems[f"{prefix}whatsapp_template.parameters"] = f"at most {MAX_PARAMETERS}"
        for i, raw in enumerate(content.parameters[:MAX_PARAMETERS]):
            field = f"{prefix}whatsapp_template.parameters[{i}]"
            _bounded(raw, field, MAX_PARAMETER, problems)
            if not raw.strip():
                problems[field] = "empty (WhatsApp refuses empty parameters)"
            parsed = _parse(raw, field, field_keys, problems)
            if parsed is not None:
                parameters.append(parsed)
    else:
        if content.template_name or content.template_language or content.parameters:
            problems[f"{prefix}whatsapp_template"] = "only for a WhatsApp channel"
        if not content.text.strip():
            problems[f"{prefix}text"] = "required"
        _bounded(content.text, f"{prefix}text", MAX_TEXT, problems)
        text = _parse(content.text, f"{prefix}text", field_keys, problems)
        if channel_type == "email":
            if not content.subject.strip():
                problems[f"{prefix}subject"] = "required"
            _bounded(content.subject, f"{prefix}subject", MAX_SUBJECT, problems)
            subject = _parse(content.subject, f"{prefix}subject", field_keys, problems)
        elif content.subject:
            problems[f"{prefix}subject"] = "only for an e-mail channel"
    if problems:
        raise Violations(problems)
    return Compiled(channel_type, content, text, subject, tuple(parameters))


def _one_line(text: str) -> str:
    """WhatsApp refuses parameters with new lines, tabs or more than four spaces in a row."""
    return " ".join(text.split())


def render(compiled: Compiled, values: Mapping[str, str]) -> Rendered:
    """One recipient's message from their ``values`` (variable name -> text)."""
    link = compiled.content.link
    filled = {**values, LINK: link}
    missing: dict[str, None] = {}

    def one(template: templates.Template) -> str:
        done = templates.render(template, filled)
        missing.update(dict.fromkeys(done.missing))
        return done.text

    if compiled.channel_type == "whatsapp":
        parameters = tuple(_one_line(one(p)) or "-" for p in compiled.parameters)
        return Rendered(parameters=parameters, missing=tuple(missing))
    assert compiled.text is not None
    text = one(compiled.text)
    if link and LINK not in compiled.text.variables:
        text = f"{text.rstrip()}\n{link}"
    if compiled.channel_type == "line":
        text = text[:LINE_TEXT]
    subject = _one_line(one(compiled.subject)) if compiled.subject is not None else ""
    return Rendered(text=text, subject=subject, missing=tuple(missing))


def sms_messages(text: str) -> int:
    """Twilio messages the SMS gateway sends for ``text`` (what ``sms_per_month`` counts)."""
    return max(1, math.ceil(len(text.strip()) / SMS_PIECE))
