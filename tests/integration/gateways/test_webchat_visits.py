"""The web chat gateway passes the widget's page and referrer with the conversation it
starts, and the core counts it as a visitor (``conversation_visits``, ReportService's visitor
report): path without query, referrer host, the region from Accept-Language."""

from __future__ import annotations

import asyncpg
from usher.client import ReportClient
from usher.v1 import report_service_pb2 as pb

from tests.integration.gateways.kit import TENANT, Core, RunningGateway, eventually
from tests.integration.gateways.test_webchat import (  # noqa: F401  (the fixtures)
    chat_gateway,
    open_widget,
    the_core,
)
from tests.integration.test_report_visitors_bots import _now_range


async def test_a_widgets_conversation_counts_as_a_visitor(
    pool: asyncpg.Pool,
    the_core: Core,  # noqa: F811
    chat_gateway: RunningGateway,  # noqa: F811
) -> None:
    widget, _ = await open_widget(
        chat_gateway,
        page="https://shop.example/pricing?plan=pro",
        referrer="https://search.example/?q=shop",
    )
    await widget.send(type="message", id="m1", text="Hello")
    await widget.next("ack", id="m1")
    token = await the_core.running.token(TENANT, "supervisor")
    async with ReportClient(the_core.target, token) as reports:

        async def counted() -> pb.GetVisitorReportResponse | None:
            found = await reports.get_visitor_report(pb.GetVisitorReportRequest(**_now_range()))
            return found if found.started else None

        report = await eventually(counted)
    assert [(r.page, r.referrer_host, r.region, r.started) for r in report.rows] == [
        ("/pricing", "search.example", "HK", 1)
    ]
    channel = await pool.fetchval("SELECT channel FROM conversation_visits")
    assert channel == "webchat"
