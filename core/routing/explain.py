"""Routing decisions, recorded so that every assignment can be explained after the fact."""

from __future__ import annotations

from dataclasses import dataclass

MAX_CANDIDATES = 8
"""Candidates kept per decision; enough to explain, bounded so recording stays cheap."""


@dataclass(frozen=True, slots=True)
class Candidate:
    agent_id: str
    verdict: str
    """``chosen``, or why the agent was passed over (``no room``, ``declined earlier``...)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a conversation was offered to whom.

    ``filters`` are the eligibility rules of the step (skills, designation); ``score`` is the
    conversation's priority score when matched; ``reason`` names the strategy's winning key.
    """

    step: int
    filters: str
    strategy: str
    candidates: tuple[Candidate, ...]
    winners: tuple[str, ...]
    score: float
    reason: str
