"""Which bot a customer's arrival or message starts: pure and deterministic.

Patterns are RE2 expressions (``google-re2``): matching takes time linear in the text whatever
the pattern, so an author's pattern cannot stall the shard, and the outcome never depends on a
clock (as a timeout would make it). Patterns are capped in length and compiled size
(``compile_pattern``), and only the first ``MAX_MATCHED_TEXT`` characters of a message are
looked at.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import re2

from core.bots.flow import (
    Bot,
    BotStatus,
    KeywordTrigger,
    NewConversationTrigger,
    OutOfHoursTrigger,
    PhraseMatch,
    PhraseTrigger,
    ReferenceTrigger,
    Trigger,
)

MAX_PATTERN: Final = 200
"""Characters of a pattern."""
MAX_PROGRAM_SIZE: Final = 2_000
"""RE2's compiled size of a pattern (its measure of the automaton's cost)."""
MAX_PATTERN_MEMORY: Final = 1 << 20
"""Bytes RE2 may use for one pattern."""
MAX_MATCHED_TEXT: Final = 4_096


class BadPattern(ValueError):
    """A pattern that is not RE2 syntax or is too large."""


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = MAX_PATTERN_MEMORY
    options.log_errors = False
    return options


@functools.lru_cache(maxsize=4_096)
def compile_pattern(pattern: str) -> re2._Regexp:
    """The compiled pattern (case-insensitive), or ``BadPattern`` saying why not."""
    if not pattern or len(pattern) > MAX_PATTERN:
        raise BadPattern(f"1 to {MAX_PATTERN} characters")
    try:
        compiled = re2.compile(pattern, _options())
    except re2.error as exc:
        raise BadPattern(f"not an RE2 pattern: {exc}") from None
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise BadPattern("too complex (RE2 program size over 2,000)")
    return compiled


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """What might start a bot: a new conversation (with its first message, if any), or a
    customer message in a conversation no flow is running in."""

    channel: str
    new_conversation: bool
    text: str = ""
    reference: str = ""
    """The QR code's or campaign link's reference the conversation was opened with."""
    open: bool = True
    """Whether the business is open now."""


@dataclass(frozen=True, slots=True)
class Match:
    bot: Bot
    trigger: Trigger

    @property
    def step(self) -> str:
        """Where the flow starts."""
        return self.trigger.step or self.bot.flow.start


def _phrase(trigger: PhraseTrigger, text: str) -> bool:
    text = text[:MAX_MATCHED_TEXT]
    if trigger.match is PhraseMatch.EXACT:
        return text.strip().casefold() == trigger.text.strip().casefold()
    if trigger.match is PhraseMatch.CONTAINS:
        return trigger.text.casefold() in text.casefold()
    try:
        return compile_pattern(trigger.text).search(text) is not None
    except BadPattern:
        return False  # refused when saved; never fires


def fires(trigger: Trigger, arrival: Arrival) -> bool:
    """Whether ``trigger`` fires for ``arrival`` (the bot's channels aside)."""
    if isinstance(trigger, NewConversationTrigger):
        return arrival.new_conversation
    if isinstance(trigger, OutOfHoursTrigger):
        return arrival.new_conversation and not arrival.open
    if isinstance(trigger, ReferenceTrigger):
        return bool(arrival.reference) and arrival.reference == trigger.reference
    if isinstance(trigger, PhraseTrigger):
        return bool(arrival.text) and _phrase(trigger, arrival.text)
    folded = arrival.text[:MAX_MATCHED_TEXT].casefold()
    return any(word.casefold() in folded for word in trigger.keywords if word)


def _rank(trigger: Trigger) -> int:
    """Precedence: the most specific trigger wins."""
    if isinstance(trigger, ReferenceTrigger):
        return 0
    if isinstance(trigger, PhraseTrigger):
        return {PhraseMatch.EXACT: 1, PhraseMatch.PATTERN: 2, PhraseMatch.CONTAINS: 3}[
            trigger.match
        ]
    if isinstance(trigger, KeywordTrigger):
        return 4
    if isinstance(trigger, OutOfHoursTrigger):
        return 5
    return 6


def choose(bots: Iterable[Bot], arrival: Arrival) -> Match | None:
    """The active bot serving ``arrival.channel`` whose trigger fires and is the most specific
    (a reference, then an exact phrase, a pattern, a contained phrase, a keyword, out of hours,
    any new conversation); ties go to the smaller bot id, then the earlier trigger."""
    best: tuple[int, str, int] | None = None
    found: Match | None = None
    for bot in bots:
        if bot.status is not BotStatus.ACTIVE or arrival.channel not in bot.channels:
            continue
        for index, trigger in enumerate(bot.triggers):
            if not fires(trigger, arrival):
                continue
            key = (_rank(trigger), bot.id, index)
            if best is None or key < best:
                best, found = key, Match(bot, trigger)
    return found
