"""Opt-out and opt-in keywords in customers' messages. Pure.

A message that is nothing but a keyword (case, width and surrounding punctuation aside) opts
its sender out of broadcasts on the channel it came on (``STOP``, ``UNSUBSCRIBE``, ``退訂``...)
or back in (``START``, ``UNSTOP``...). Only whole messages count: "please don't stop" is a
conversation, not an opt-out. Twilio's own opt-out words ``CANCEL``, ``END`` and ``QUIT`` are
left out: on chat channels they end conversations more often than subscriptions.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

STOP_WORDS: Final = frozenset(
    {
        "stop",
        "stopall",
        "unsubscribe",
        "optout",
        "opt-out",
        "opt out",
        "退訂",
        "退订",
        "取消訂閱",
        "取消订阅",
        "停止",
        "ยกเลิก",
        "ยกเลิกรับข่าวสาร",
    }
)
START_WORDS: Final = frozenset({"start", "unstop", "subscribe", "訂閱", "订阅"})
MAX_KEYWORD: Final = 40
_TRIM: Final = " \t\r\n.,!?;:'\"()[]{}<>。，！？；：「」『』（）"


@dataclass(frozen=True, slots=True)
class Keyword:
    """What a message asks for, and the word as normalized."""

    action: Literal["stop", "start"]
    word: str


def normalized(text: str) -> str:
    """NFKC, case-folded, trimmed of whitespace and punctuation, inner spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold().strip(_TRIM)
    return " ".join(folded.split())


def keyword(text: str) -> Keyword | None:
    """The opt-out or opt-in a whole message asks for, or None (cheap: long texts are none)."""
    if not text or len(text) > MAX_KEYWORD:
        return None
    word = normalized(text)
    if word in STOP_WORDS:
        return Keyword("stop", word)
    if word in START_WORDS:
        return Keyword("start", word)
    return None
