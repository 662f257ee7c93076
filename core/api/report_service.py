"""ReportService: reports over the rollups, their exports, and the agents' login log.

Reads only, for supervisors and admins (``core.api.policy``). The request is parsed whole
(every bad field named at once), the report read by ``core.reports.series.run`` (which checks
the range and the filter's ids against the caller's tenant), and translated into protos here;
the servicer holds no SQL.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, NoReturn

from google.protobuf import duration_pb2
from usher.v1 import record_service_pb2 as records_pb
from usher.v1 import report_service_pb2 as pb
from usher.v1 import report_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api import report_extras as extras
from core.api.auth import caller
from core.api.context import ApiContext
from core.api.errors import abort
from core.reports import charts as ch
from core.reports import export
from core.reports import figures as fg
from core.reports.calendar import Grouping, Period
from core.reports.query import MAX_RANGE, BadQuery, Filter, Kind, ReportQuery, problems
from core.reports.series import Report, Row, run
from core.routing.errors import InvalidArgument
from core.store import attendance, bot_report, report_reads, visits
from core.store.attendance import Attendance, Login

Ctx = Any  # grpc.aio.ServicerContext

DEFAULT_LOGINS_PAGE: Final = 100
MAX_PAGE: Final = 500

GROUPINGS: Final = {
    pb.REPORT_GROUPING_UNSPECIFIED: Grouping.DAY,
    pb.REPORT_GROUPING_HOUR: Grouping.HOUR,
    pb.REPORT_GROUPING_DAY: Grouping.DAY,
    pb.REPORT_GROUPING_WEEK: Grouping.WEEK,
    pb.REPORT_GROUPING_MONTH: Grouping.MONTH,
}
KINDS: Final = {
    pb.REPORT_KIND_OVERVIEW: Kind.OVERVIEW,
    pb.REPORT_KIND_AGENTS: Kind.AGENTS,
    pb.REPORT_KIND_QUEUES: Kind.QUEUES,
    pb.REPORT_KIND_CHANNELS: Kind.CHANNELS,
}


# --- requests ----------------------------------------------------------------------------------


def _id(collection: str, value: str, field: str, bad: dict[str, str]) -> str:
    """The id in ``{collection}/{id}``, or "" with a violation of ``field`` noted in ``bad``."""
    try:
        return cv.parse_name(collection, value, field=field)
    except InvalidArgument:
        bad[field] = f"must look like {collection}/{{id}}"
        return ""


def _ids(collection: str, values: Any, field: str, bad: dict[str, str]) -> tuple[str, ...]:
    return tuple(_id(collection, v, f"{field}[{i}]", bad) for i, v in enumerate(values))


def _range(message: Any, prefix: str, bad: dict[str, str]) -> tuple[dt.datetime, dt.datetime]:
    epoch = dt.datetime.fromtimestamp(0, dt.UTC)
    start = end = epoch
    for name in ("start_time", "end_time"):
        if not message.HasField(name):
            bad[f"{prefix}{name}"] = "required"
    if message.HasField("start_time"):
        start = cv.from_timestamp(message.start_time)
    if message.HasField("end_time"):
        end = cv.from_timestamp(message.end_time)
    return start, end


def query_from_proto(kind: Kind, q: pb.ReportQuery, prefix: str = "query.") -> ReportQuery:
    """The query; ``BadQuery`` naming every malformed field (the range's checks follow in
    ``core.reports.query.check``)."""
    bad: dict[str, str] = {}
    start, end = _range(q, prefix, bad)
    grouping = GROUPINGS.get(q.group_by)
    if grouping is None:
        bad[f"{prefix}group_by"] = "unknown grouping"
    f = q.filter
    field = f"{prefix}filter"
    queues = _ids("queues", f.queues, f"{field}.queues", bad)
    agents = _ids("agents", f.agents, f"{field}.agents", bad)
    channels: list[str] = []
    for i, channel in enumerate(f.channels):
        if not channel.strip():
            bad[f"{field}.channels[{i}]"] = "empty"
        channels.append(channel)
    department = (
        _id("departments", f.department, f"{field}.department", bad) if f.department else ""
    )
    if bad or grouping is None:
        raise BadQuery(bad)
    return ReportQuery(
        kind, start, end, grouping, Filter(queues, agents, tuple(channels), department, f.tag)
    )


async def _refuse(context: Ctx, exc: BadQuery, prefix: str = "") -> NoReturn:
    violations = {
        (k if k.startswith(prefix) else f"{prefix}{k}"): v for k, v in exc.violations.items()
    }
    await abort(context, "INVALID_ARGUMENT", f"bad report request: {exc}", violations=violations)


# --- responses ---------------------------------------------------------------------------------


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def _distribution(d: fg.Distribution) -> pb.DurationFigures:
    return pb.DurationFigures(
        count=d.count,
        mean=_duration(d.mean),
        p50=_duration(d.p50),
        p90=_duration(d.p90),
        p95=_duration(d.p95),
    )


def _buckets(f: fg.Figures) -> pb.ResponseBuckets:
    return pb.ResponseBuckets(**f.response_buckets)


def rating_figures(f: fg.Figures) -> pb.RatingFigures:
    scores = f.rating_scores
    return pb.RatingFigures(
        count=f["ratings"],
        average=f.rating_average,
        **{f"score_{score}": n for score, n in scores.items()},
    )


def conversation_figures(f: fg.Figures) -> pb.ConversationFigures:
    return pb.ConversationFigures(
        started=f["started"],
        bot_started=f["bot_started"],
        bot_only=f["bot_only"],
        bot_handed_off=f["bot_handed_off"],
        handed_to_agents=f["handed"],
        queued=f["queued"],
        answered=f["answered"],
        answered_within_threshold=f["answered_in_sl"],
        abandoned=f["abandoned"],
        abandoned_within_threshold=f["abandoned_in_sl"],
        left_messages=f["left_message"],
        overflowed=f["overflowed"],
        transfers=f.transfers,
        ended=f["ended"],
        resolved=f["resolved"],
        spam=f["spam"],
        ignored=f["ignored"],
        service_level=f.service_level,
        first_response_buckets=_buckets(f),
        first_response=_distribution(f.first_response),
        wait=_distribution(f.wait),
        handle=_distribution(f.handle),
        customer_messages=f["customer_messages"],
        agent_messages=f["agent_messages"],
        bot_messages=f["bot_messages"],
        follow_ups=f["follow_ups"],
        bot_could_not_answer=f["bot_unanswered"],
        ratings=rating_figures(f),
    )


def agent_figures(f: fg.Figures) -> pb.AgentFigures:
    return pb.AgentFigures(
        assigned=f["assigned"],
        handled=f["handled"],
        messages_sent=f["agent_messages"],
        canned_replies=f["canned_replies"],
        first_response_buckets=_buckets(f),
        first_response=_distribution(f.first_response),
        handle=_distribution(f.handle),
        transfers_in=f["transfers_in"],
        transfers_out=f["transfers_out"],
        offers=f["offered"],
        offers_missed=f["offers_missed"],
        offers_rejected=f["offers_rejected"],
        answered=f["answered"],
        wait=_distribution(f.wait),
        resolved=f["resolved"],
        spam=f["spam"],
        ignored=f["ignored"],
        ratings=rating_figures(f),
    )


def attendance_proto(a: Attendance | None) -> pb.Attendance | None:
    if a is None:
        return None
    return pb.Attendance(
        first_sign_in_time=cv.timestamp(a.first_sign_in),
        last_online_time=cv.timestamp(a.last_online),
        online=_duration(a.seconds.get("online", 0.0)),
        away=_duration(a.seconds.get("away", 0.0)),
        break_time=_duration(a.seconds.get("break", 0.0)),
        custom_statuses={k: d for k, v in a.custom.items() if (d := _duration(v)) is not None},
    )


def _period(p: Period) -> pb.ReportPeriod:
    return pb.ReportPeriod(
        start_time=cv.timestamp(p.start), end_time=cv.timestamp(p.end), label=p.label
    )


def _range_proto(report: Report) -> pb.ReportRange:
    return pb.ReportRange(
        start_time=cv.timestamp(report.start),
        end_time=cv.timestamp(report.end),
        time_zone=report.time_zone,
    )


def _period_of(report: Report, row: Row) -> pb.ReportPeriod | None:
    return None if row.period is None else _period(report.periods[row.period])


def login_proto(login: Login) -> pb.AgentLogin:
    return pb.AgentLogin(
        agent=f"agents/{login.agent_id}",
        sign_in_time=cv.timestamp(login.sign_in),
        sign_out_time=cv.timestamp(login.sign_out),
        client_address=login.client_address,
    )


# --- login pages ---------------------------------------------------------------------------------


def _fingerprint(request: pb.ListAgentLoginsRequest) -> str:
    basis = pb.ListAgentLoginsRequest()
    basis.CopyFrom(request)
    basis.ClearField("page_size")
    basis.ClearField("page_token")
    return hashlib.sha256(basis.SerializeToString(deterministic=True)).hexdigest()[:16]


def _login_key(login: Login) -> str:
    return f"{login.sign_in.timestamp():.6f}|{login.agent_id}"


def _encode(fingerprint: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{fingerprint}|{key}".encode()).decode()


def _decode(token: str, fingerprint: str) -> tuple[float, str] | None:
    """(sign-in, agent) after which the page starts; None for a token from elsewhere."""
    try:
        found, at, agent = base64.urlsafe_b64decode(token.encode()).decode().split("|", 2)
        if found != fingerprint or not agent:
            return None
        return float(at), agent
    except (ValueError, UnicodeDecodeError):
        return None


CHARTS: Final = {
    pb.REPORT_CHART_VOLUME: ch.ChartKind.VOLUME,
    pb.REPORT_CHART_OUTCOMES: ch.ChartKind.OUTCOMES,
    pb.REPORT_CHART_FIRST_RESPONSE: ch.ChartKind.FIRST_RESPONSE,
}
IMAGE_FORMATS: Final = {
    pb.IMAGE_FORMAT_UNSPECIFIED: ch.ImageFormat.PNG,
    pb.IMAGE_FORMAT_PNG: ch.ImageFormat.PNG,
    pb.IMAGE_FORMAT_SVG: ch.ImageFormat.SVG,
}


class ReportServicer(pb_grpc.ReportServiceServicer):
    """See the module docstring."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def _report(
        self, context: Ctx, kind: Kind, q: pb.ReportQuery, *, with_logins: bool = False
    ) -> Report:
        try:
            query = query_from_proto(kind, q)
            return await run(self.ctx.pool, caller(context).tenant, query, with_logins=with_logins)
        except BadQuery as exc:
            await _refuse(context, exc, "query.")

    @cv.guarded
    async def GetOverviewReport(
        self, request: pb.GetOverviewReportRequest, context: Ctx
    ) -> pb.GetOverviewReportResponse:
        report = await self._report(context, Kind.OVERVIEW, request.query)
        return pb.GetOverviewReportResponse(
            range=_range_proto(report),
            rows=[
                pb.OverviewRow(
                    period=_period_of(report, r), figures=conversation_figures(r.figures)
                )
                for r in report.rows
            ],
            total=conversation_figures(report.total),
        )

    @cv.guarded
    async def GetAgentReport(
        self, request: pb.GetAgentReportRequest, context: Ctx
    ) -> pb.GetAgentReportResponse:
        report = await self._report(context, Kind.AGENTS, request.query)

        def row(r: Row) -> pb.AgentRow:
            return pb.AgentRow(
                period=_period_of(report, r),
                agent=f"agents/{r.key}",
                display_name=report.names.get(r.key, ""),
                figures=agent_figures(r.figures),
                attendance=attendance_proto(r.attendance),
            )

        return pb.GetAgentReportResponse(
            range=_range_proto(report),
            rows=[row(r) for r in report.rows],
            totals=[row(r) for r in report.totals],
        )

    @cv.guarded
    async def GetQueueReport(
        self, request: pb.GetQueueReportRequest, context: Ctx
    ) -> pb.GetQueueReportResponse:
        report = await self._report(context, Kind.QUEUES, request.query)

        def row(r: Row) -> pb.QueueRow:
            return pb.QueueRow(
                period=_period_of(report, r),
                queue=cv.queue_name(r.key),
                display_name=report.names.get(r.key, ""),
                figures=conversation_figures(r.figures),
            )

        return pb.GetQueueReportResponse(
            range=_range_proto(report),
            rows=[row(r) for r in report.rows],
            totals=[row(r) for r in report.totals],
        )

    @cv.guarded
    async def GetChannelReport(
        self, request: pb.GetChannelReportRequest, context: Ctx
    ) -> pb.GetChannelReportResponse:
        report = await self._report(context, Kind.CHANNELS, request.query)

        def row(r: Row) -> pb.ChannelRow:
            return pb.ChannelRow(
                period=_period_of(report, r),
                channel=r.key,
                figures=conversation_figures(r.figures),
            )

        return pb.GetChannelReportResponse(
            range=_range_proto(report),
            rows=[row(r) for r in report.rows],
            totals=[row(r) for r in report.totals],
        )

    @cv.guarded
    async def ListAgentLogins(
        self, request: pb.ListAgentLoginsRequest, context: Ctx
    ) -> pb.ListAgentLoginsResponse:
        who = caller(context)
        bad: dict[str, str] = {}
        start, end = _range(request, "", bad)
        agents = _ids("agents", request.agents, "agents", bad)
        department = ""
        if request.department:
            department = _id("departments", request.department, "department", bad)
        if not bad and end <= start:
            bad["end_time"] = "the range ends before it starts (or is empty)"
        elif not bad and end - start > MAX_RANGE:
            bad["end_time"] = "the range spans more than two years"
        size = request.page_size or DEFAULT_LOGINS_PAGE
        if not 1 <= size <= MAX_PAGE:
            bad["page_size"] = f"must be 0 to {MAX_PAGE}"
        fingerprint = _fingerprint(request)
        after = _decode(request.page_token, fingerprint) if request.page_token else None
        if request.page_token and after is None:
            bad["page_token"] = "not a token this request was given"
        if not bad:
            missing = await report_reads.unknown(
                self.ctx.pool, who.tenant, (), agents, (department,) if department else ()
            )
            for a in missing.agents:
                bad[f"agents[{agents.index(a)}]"] = f"no agent {a!r}"
            if missing.departments:
                bad["department"] = f"no department {department!r}"
        if bad:
            await abort(context, "INVALID_ARGUMENT", "bad logins request", violations=bad)
        chosen: list[str] | None = list(agents) or None
        if department and chosen is None:
            chosen = await report_reads.department_agents(self.ctx.pool, who.tenant, department)
        found_logins: list[Login] = []
        if chosen != []:
            now = dt.datetime.now(dt.UTC)
            found_logins = await attendance.logins(
                self.ctx.pool, who.tenant, start, end, now, chosen
            )
        if after is not None:
            found_logins = [x for x in found_logins if (x.sign_in.timestamp(), x.agent_id) > after]
        page = found_logins[:size]
        more = len(found_logins) > size
        return pb.ListAgentLoginsResponse(
            logins=[login_proto(x) for x in page],
            next_page_token=_encode(fingerprint, _login_key(page[-1])) if more else "",
        )

    @cv.guarded
    async def GetReportChart(
        self, request: pb.GetReportChartRequest, context: Ctx
    ) -> pb.GetReportChartResponse:
        """Drawn off the event loop (a chart takes some tens of milliseconds of CPU)."""
        bad: dict[str, str] = {}
        kind = KINDS.get(request.kind)
        if kind is None:
            bad["kind"] = "a report kind is required"
        chart_kind = CHARTS.get(request.chart)
        if chart_kind is None:
            bad["chart"] = "volume, outcomes or first_response"
        image = IMAGE_FORMATS.get(request.format)
        if image is None:
            bad["format"] = "PNG or SVG"
        try:
            query = query_from_proto(kind or Kind.OVERVIEW, request.query)
            bad.update({f"query.{k}": v for k, v in problems(query).items()})
        except BadQuery as exc:
            bad.update(exc.violations)
        if bad:
            await _refuse(context, BadQuery(bad))
        assert chart_kind is not None and image is not None
        report = await self._report(context, query.kind, request.query)
        chart = ch.charts(report)[chart_kind]
        drawn = await asyncio.to_thread(ch.render, chart, image)
        return pb.GetReportChartResponse(
            content_type=ch.CONTENT_TYPES[image],
            image=drawn,
            title=chart.title,
            x_labels=chart.x_labels,
            series=[pb.ChartSeries(name=s.name, values=s.values) for s in chart.series],
        )

    @cv.guarded
    async def GetVisitorReport(
        self, request: pb.GetVisitorReportRequest, context: Ctx
    ) -> pb.GetVisitorReportResponse:
        bad: dict[str, str] = {}
        start, end = extras.plain_range(request, bad)
        limit = extras.visitor_limit(request, bad)
        if bad:
            await _refuse(context, BadQuery(bad))
        report = await visits.report(
            self.ctx.pool, caller(context).tenant, start, end, channel=request.channel, limit=limit
        )
        return extras.visitor_response(report)

    @cv.guarded
    async def GetBotReport(
        self, request: pb.GetBotReportRequest, context: Ctx
    ) -> pb.GetBotReportResponse:
        bad: dict[str, str] = {}
        start, end = extras.plain_range(request, bad)
        if bad:
            await _refuse(context, BadQuery(bad))
        rows = await bot_report.report(self.ctx.pool, caller(context).tenant, start, end)
        return extras.bot_response(rows)

    @cv.guarded_stream
    async def ExportReport(
        self, request: pb.ExportReportRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportReportResponse]:
        bad: dict[str, str] = {}
        kind = KINDS.get(request.kind)
        if kind is None:
            bad["kind"] = "a report kind is required"
        write: Callable[[Report], AsyncIterator[bytes]] | None = None
        if request.format == records_pb.EXPORT_FORMAT_CSV:
            write = export.csv_chunks
        elif request.format == records_pb.EXPORT_FORMAT_XLSX:
            write = export.xlsx_chunks
        else:
            bad["format"] = "CSV or XLSX"
        try:
            query = query_from_proto(kind or Kind.OVERVIEW, request.query)
        except BadQuery as exc:
            bad.update(exc.violations)
        if bad:
            await _refuse(context, BadQuery(bad))
        assert write is not None
        report = await self._report(context, query.kind, request.query, with_logins=True)
        async for chunk in write(report):
            yield pb.ExportReportResponse(chunk=chunk)
