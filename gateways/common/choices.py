"""Choices offered to customers, remembered so that a customer's answer maps back to an option.

A channel that shows choices natively (WhatsApp buttons, LINE postbacks, web chat buttons)
gets the option's id back from the provider. A channel that shows them as numbered lines (SMS,
e-mail, WhatsApp beyond its limits) gets text: ``OfferLog`` keeps the last choices offered to
each customer (SQLite in the gateway's data dir, so a restart forgets nothing) and ``pick``
maps "2", "２", "2." or an option's title (any case) back to the option. Offers are replaced by
the next agent or bot message (one without choices ends the offer: a later "2" is an answer to
something else), forgotten when the conversation ends, and ignored after ``KEEP``.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

KEEP = dt.timedelta(days=7)
"""How long an offer is answerable (e-mail replies come days later)."""
ENDED = frozenset(
    {conversation_pb2.CONVERSATION_STATE_CLOSED, conversation_pb2.CONVERSATION_STATE_ABANDONED}
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offers (
    tenant TEXT NOT NULL, channel TEXT NOT NULL, customer TEXT NOT NULL,
    conversation TEXT NOT NULL, message TEXT NOT NULL, options TEXT NOT NULL,
    numbered INTEGER NOT NULL, offered REAL NOT NULL,
    PRIMARY KEY (tenant, channel, customer));
"""


@dataclass(frozen=True, slots=True)
class Option:
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Offer:
    """The last choices offered to a customer: with ``message``, in ``conversation``."""

    conversation: str
    message: str
    options: tuple[Option, ...]
    numbered: bool
    """Shown as numbered lines: a number answers it (else only a title does)."""

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def pick(self, text: str) -> Option | None:
        """The option ``text`` names: its number (when shown numbered) or its title, any case;
        None when the text is anything else."""
        said = normalized(text)
        if not said:
            return None
        number = said.rstrip(".)")
        if self.numbered and number.isdigit() and 1 <= int(number) <= len(self.options):
            return self.options[int(number) - 1]
        return next((o for o in self.options if normalized(o.title) == said), None)


def normalized(text: str) -> str:
    """``text`` compared loosely: compatibility forms (full-width digits), case, spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def options_of(choices: conversation_pb2.MessageChoices) -> tuple[Option, ...]:
    return tuple(Option(o.id, o.title, o.description) for o in choices.options)


def numbered_lines(options: Sequence[Option]) -> list[str]:
    """``1. Refund``, ``2. Delivery – two days``: how text-only channels show options."""
    return [
        f"{i}. {o.title}" + (f" – {o.description}" if o.description else "")
        for i, o in enumerate(options, 1)
    ]


def numbered_text(text: str, choices: conversation_pb2.MessageChoices) -> str:
    """The message as text: header, text, the numbered options, footer; blank lines between."""
    parts = [
        choices.header,
        text,
        "\n".join(numbered_lines(options_of(choices))),
        choices.footer,
    ]
    return "\n\n".join(part.strip() for part in parts if part.strip())


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OfferLog:
    """See the module docstring. Calls are short local writes, made from the event loop."""

    def __init__(self, path: Path, *, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("DELETE FROM offers WHERE offered < ?", ((clock() - KEEP).timestamp(),))

    def close(self) -> None:
        self._db.close()

    def note(self, tenant: str, channel: str, item: pb.OutboundItem, *, numbered: bool) -> None:
        """Follow what goes to the customer: an agent's or bot's message with choices is the
        new offer, one without ends it, and so does the conversation's end."""
        kind = item.WhichOneof("item")
        if kind == "message" and item.message.sender in (
            conversation_pb2.SENDER_AGENT,
            conversation_pb2.SENDER_BOT,
        ):
            if item.message.HasField("choices"):
                self.remember(
                    tenant,
                    channel,
                    item.external_id,
                    item.conversation,
                    item.message.name,
                    options_of(item.message.choices),
                    numbered=numbered,
                )
            else:
                self.forget(tenant, channel, item.external_id)
        elif kind == "state_change" and item.state_change.state in ENDED:
            self.forget(tenant, channel, item.external_id, conversation=item.conversation)

    def remember(
        self,
        tenant: str,
        channel: str,
        customer: str,
        conversation: str,
        message: str,
        options: Sequence[Option],
        *,
        numbered: bool,
    ) -> None:
        encoded = json.dumps([[o.id, o.title, o.description] for o in options])
        self._db.execute(
            "INSERT OR REPLACE INTO offers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tenant,
                channel,
                customer,
                conversation,
                message,
                encoded,
                int(numbered),
                self._clock().timestamp(),
            ),
        )

    def forget(self, tenant: str, channel: str, customer: str, *, conversation: str = "") -> None:
        """End the customer's offer (only if made in ``conversation``, when given)."""
        self._db.execute(
            "DELETE FROM offers WHERE tenant = ? AND channel = ? AND customer = ?"
            " AND (? = '' OR conversation = ?)",
            (tenant, channel, customer, conversation, conversation),
        )

    def last(self, tenant: str, channel: str, customer: str) -> Offer | None:
        """The customer's standing offer, or None (none made, ended, or older than ``KEEP``)."""
        row = self._db.execute(
            "SELECT conversation, message, options, numbered, offered FROM offers"
            " WHERE tenant = ? AND channel = ? AND customer = ?",
            (tenant, channel, customer),
        ).fetchone()
        if row is None or row[4] < (self._clock() - KEEP).timestamp():
            return None
        options = tuple(Option(str(i), str(t), str(d)) for i, t, d in json.loads(row[2]))
        return Offer(str(row[0]), str(row[1]), options, bool(row[3]))

    def pick(self, tenant: str, channel: str, customer: str, text: str) -> Option | None:
        """The option the customer's ``text`` answers their standing offer with, or None."""
        offer = self.last(tenant, channel, customer)
        return None if offer is None else offer.pick(text)
