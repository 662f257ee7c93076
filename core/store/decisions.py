"""Routing decisions as recorded with the offers (``offers.decision``), for explanations."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg
import msgspec

from core.routing.explain import Candidate, Decision
from core.store.errors import translated_errors


class _Candidate(msgspec.Struct):
    agent_id: str = ""
    verdict: str = ""


class _Decision(msgspec.Struct):
    """A stored decision, read leniently: a field the writer did not have reads as empty."""

    step: int = 0
    filters: str = ""
    strategy: str = ""
    candidates: list[_Candidate] = []
    winners: list[str] = []
    score: float = 0.0
    reason: str = ""


_decoder = msgspec.json.Decoder(_Decision)


def _decode(text: str) -> Decision:
    d = _decoder.decode(text)
    return Decision(
        step=d.step,
        filters=d.filters,
        strategy=d.strategy,
        candidates=tuple(Candidate(x.agent_id, x.verdict) for x in d.candidates),
        winners=tuple(d.winners),
        score=d.score,
        reason=d.reason,
    )


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """One offer's decision: why the conversation was offered to whom, and when."""

    offer_id: str
    made_at: dt.datetime
    decision: Decision


async def routing_decisions(
    pool: asyncpg.Pool, tenant: str, conversation_id: str
) -> tuple[RecordedDecision, ...]:
    """Every decision recorded for the conversation, oldest first (none for an unknown one)."""
    with translated_errors():
        rows = await pool.fetch(
            """SELECT offer_id, decision::text AS decision, made_at FROM offers
               WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY made_at, offer_id""",
            tenant,
            conversation_id,
        )
    return tuple(
        RecordedDecision(r["offer_id"], r["made_at"], _decode(r["decision"])) for r in rows
    )
