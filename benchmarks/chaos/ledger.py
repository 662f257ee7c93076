"""What the clients were told: every acknowledged conversation and message, every ownership an
agent was granted and when it let go, refusals of what was acknowledged, and the probes' calls.
The audit holds the store and the API to it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AckedStart:
    tenant: str
    conversation: str
    """``conversations/{id}``."""
    request_id: str
    customer: str
    queue: str
    first_text: str
    provider_message_id: str


@dataclass(frozen=True, slots=True)
class AckedMessage:
    tenant: str
    name: str
    """``conversations/{c}/messages/{id}``."""
    conversation: str
    text: str
    sender: str
    """``customer`` (key: a provider message id) or ``agent:{id}`` (key: a request id)."""
    key: str


@dataclass(slots=True)
class Hold:
    """An agent's ownership of a conversation: acknowledged (or, after an unknown outcome, read
    back) at ``acked``; let go by a request first sent at ``released`` (None: never)."""

    agent: str
    acked: float
    released: float | None = None


@dataclass(frozen=True, slots=True)
class ProbeCall:
    path: str
    """``{tenant} via {door}``."""
    sent: float
    answered: float
    ok: bool


@dataclass
class Ledger:
    starts: list[AckedStart] = field(default_factory=list)
    messages: list[AckedMessage] = field(default_factory=list)
    holds: dict[tuple[str, str], list[Hold]] = field(default_factory=dict)
    refused_after_ack: list[str] = field(default_factory=list)
    """An owner's call on a conversation it was acknowledged to hold, refused (not for an
    unknown earlier outcome of the same call)."""
    unknown: dict[str, int] = field(default_factory=dict)
    """Calls given up on with their outcome unknown (never acknowledged), by operation."""
    errors: dict[str, int] = field(default_factory=dict)
    """Other failures of the load, by operation and kind (not acknowledged, so not audited)."""
    resolved: int = 0
    """Calls whose first attempt's outcome was unknown and that were settled by reading back."""
    probes: list[ProbeCall] = field(default_factory=list)
    calls: int = 0
    """Calls acknowledged."""

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def gave_up(self, what: str) -> None:
        self.unknown[what] = self.unknown.get(what, 0) + 1

    def own(self, tenant: str, conversation: str, agent: str, at: float) -> Hold:
        hold = Hold(agent, at)
        self.holds.setdefault((tenant, conversation), []).append(hold)
        return hold

    def double_owned(self) -> list[tuple[str, str]]:
        """Conversations granted to a second agent before the first one let go: definite, by
        the clients' own clocks (the second grant was acknowledged before the first owner even
        sent its release)."""
        found: list[tuple[str, str]] = []
        for key, holds in self.holds.items():
            ordered = sorted(holds, key=lambda h: h.acked)
            for first, second in itertools.pairwise(ordered):
                if first.agent == second.agent:
                    continue
                if first.released is None or second.acked < first.released:
                    found.append(key)
                    break
        return found
