"""ReportService's visitor and bot reports: plain ranges over projected rows
(``core.store.visits``, ``core.store.bot_report``), not the rollups' periods."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from usher.v1 import report_service_pb2 as pb

from core.api import convert as cv
from core.reports.query import MAX_RANGE
from core.store import bot_report, visits

DEFAULT_VISITOR_ROWS: Final = 100
MAX_VISITOR_ROWS: Final = 1000


def plain_range(request: Any, bad: dict[str, str]) -> tuple[dt.datetime, dt.datetime]:
    """``[start_time, end_time)``, both required, non-empty, at most two years; violations
    noted in ``bad``."""
    epoch = dt.datetime.fromtimestamp(0, dt.UTC)
    start = end = epoch
    for name in ("start_time", "end_time"):
        if not request.HasField(name):
            bad[name] = "required"
    if bad:
        return start, end
    start, end = cv.from_timestamp(request.start_time), cv.from_timestamp(request.end_time)
    if end <= start:
        bad["end_time"] = "the range ends before it starts (or is empty)"
    elif end - start > MAX_RANGE:
        bad["end_time"] = "the range spans more than two years"
    return start, end


def visitor_limit(request: pb.GetVisitorReportRequest, bad: dict[str, str]) -> int:
    limit = request.limit or DEFAULT_VISITOR_ROWS
    if not 1 <= limit <= MAX_VISITOR_ROWS:
        bad["limit"] = f"must be 0 to {MAX_VISITOR_ROWS}"
    return limit


def visitor_response(report: visits.VisitorReport) -> pb.GetVisitorReportResponse:
    return pb.GetVisitorReportResponse(
        rows=[
            pb.VisitorRow(
                page=r.page, referrer_host=r.referrer_host, region=r.region, started=r.started
            )
            for r in report.rows
        ],
        started=report.started,
    )


def bot_response(rows: tuple[bot_report.BotFigures, ...]) -> pb.GetBotReportResponse:
    return pb.GetBotReportResponse(
        rows=[
            pb.BotReportRow(
                bot=f"bots/{r.bot_id}",
                started=r.started,
                conversations=r.conversations,
                finished_in_bot=r.finished_in_bot,
                handed_off=r.handed_off,
                could_not_answer=r.could_not_answer,
            )
            for r in rows
        ]
    )
