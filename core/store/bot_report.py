"""Every bot's flows over a range (ReportService.GetBotReport), read from ``bot_runs`` (the
projection BotService.GetBotStats counts one bot from)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store.errors import translated_errors


@dataclass(frozen=True, slots=True)
class BotFigures:
    """One bot's flows started in the range and how they ended."""

    bot_id: str
    started: int
    conversations: int
    finished_in_bot: int
    """Ended in the bot (closed as resolved or not)."""
    handed_off: int
    could_not_answer: int
    """Hand-offs with reason ``bot_could_not_answer``."""


_SQL: Final = """
SELECT bot_id,
       count(*) AS started,
       count(DISTINCT conversation_id) AS conversations,
       count(*) FILTER (WHERE outcome IN ('ended', 'resolved')) AS finished_in_bot,
       count(*) FILTER (WHERE outcome = 'handed_off') AS handed_off,
       count(*) FILTER (WHERE reason = 'bot_could_not_answer') AS could_not_answer
FROM bot_runs
WHERE tenant_id = $1 AND started_at >= $2 AND started_at < $3
GROUP BY bot_id
ORDER BY bot_id"""


async def report(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    timeout: float = 10.0,
) -> tuple[BotFigures, ...]:
    """Each bot with a flow started in ``[start, end)``, by id."""
    with translated_errors():
        rows = await pool.fetch(_SQL, tenant, start, end, timeout=timeout)
    return tuple(BotFigures(**dict(r)) for r in rows)
