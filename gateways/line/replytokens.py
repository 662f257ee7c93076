"""Reply tokens: each customer's latest, with when it arrived. LINE's reply API is free but a
token works once and only for about a minute, so ``take`` hands a fresh one out once."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

Key = tuple[str, str, str]
"""(tenant, channel, LINE userId)."""


class ReplyTokens:
    def __init__(
        self, *, remember: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._tokens: OrderedDict[Key, tuple[str, float]] = OrderedDict()
        self._remember = remember
        self._clock = clock

    def keep(self, key: Key, token: str) -> None:
        """``token`` arrived now; it replaces the customer's earlier one."""
        self._tokens[key] = (token, self._clock())
        self._tokens.move_to_end(key)
        while len(self._tokens) > self._remember:
            self._tokens.popitem(last=False)

    def take(self, key: Key, fresh_for: float) -> str | None:
        """The customer's token if it arrived less than ``fresh_for`` seconds ago, removed so it
        is used once; None otherwise."""
        found = self._tokens.pop(key, None)
        if found is None:
            return None
        token, arrived = found
        return token if self._clock() - arrived < fresh_for else None

    def forget(self, key: Key) -> None:
        self._tokens.pop(key, None)
