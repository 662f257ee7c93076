"""ReportService's visitor and bot reports over gRPC, on the scripted day's tenant
(``test_reports.world``) and the bot runtime's desk (``test_bot_runtime.desk``).

Visitors, day 3 (Bangkok), after the scripted day: V1 and V2 on /pricing from google, V3 on
/pricing from google in another region, V4 on / with no referrer (by ReceiveCustomerMessage's
options), V5 with neither page nor referrer (not a visitor row). Bots: the menu bot's flow that
could not answer twice hands off (started 1, handed off 1, could not answer 1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from usher.client import InvalidArgument, ReportClient
from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as gw
from usher.v1 import report_service_pb2 as pb

from tests.bot_kit import menu_bot
from tests.integration.bot_hooks import serve
from tests.integration.test_bot_runtime import Desk, desk  # noqa: F401  (the fixture)
from tests.integration.test_reports import (  # noqa: F401  (the fixture)
    DAY3,
    T,
    World,
    _violations,
    ts,
    world,
)

GOOGLE = "https://www.google.com/search?q=usher+pricing"


async def _start(w: World, name: str, page: str, referrer: str, region: str) -> None:
    await w.gateway.start_conversation(
        gw.StartConversationRequest(
            request_id=f"visit-{name}",
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id=f"visitor-{name}"),
            queue="queues/sales",
            region=region,
            page=page,
            referrer=referrer,
        )
    )


def _rows(response: pb.GetVisitorReportResponse) -> list[tuple[str, str, str, int]]:
    return [(r.page, r.referrer_host, r.region, r.started) for r in response.rows]


async def test_visitors_by_page_referrer_and_region(world: World) -> None:  # noqa: F811
    await world.at(DAY3, 9, 0)
    await _start(world, "V1", "https://shop.test/pricing?plan=pro", GOOGLE, "th")
    await _start(world, "V2", "https://shop.test/pricing#faq", "https://WWW.Google.com/", "th")
    await _start(world, "V3", "https://shop.test/pricing", GOOGLE, "sg")
    await world.gateway.receive_customer_message(
        gw.ReceiveCustomerMessageRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id="visitor-V4"),
            message=gw.CustomerMessage(text="hi", provider_message_id="visit-V4"),
            start=gw.ConversationOptions(
                queue="queues/sales", region="th", page="https://shop.test", referrer=""
            ),
        )
    )
    await _start(world, "V5", "", "", "th")
    day = pb.GetVisitorReportRequest(start_time=ts(DAY3), end_time=ts(DAY3 + dt.timedelta(1)))
    report = await world.reports.get_visitor_report(day)
    assert _rows(report) == [
        ("/pricing", "www.google.com", "th", 2),
        ("/", "", "th", 1),
        ("/pricing", "www.google.com", "sg", 1),
    ]
    assert report.started == 4
    day.limit = 1
    first = await world.reports.get_visitor_report(day)
    assert (len(first.rows), first.started) == (1, 4)
    day.channel = "line"
    assert _rows(await world.reports.get_visitor_report(day)) == []
    before = await world.reports.get_visitor_report(
        pb.GetVisitorReportRequest(start_time=ts(DAY3 - dt.timedelta(2)), end_time=ts(DAY3))
    )
    assert (list(before.rows), before.started) == ([], 0)


async def test_visitor_and_bot_reports_name_bad_fields(world: World) -> None:  # noqa: F811
    with pytest.raises(InvalidArgument) as refused:
        await world.reports.get_visitor_report(
            pb.GetVisitorReportRequest(start_time=ts(DAY3), end_time=ts(DAY3), limit=5000)
        )
    assert _violations(refused.value) == {"end_time", "limit"}
    with pytest.raises(InvalidArgument) as missing:
        await world.reports.get_bot_report(pb.GetBotReportRequest(end_time=ts(DAY3)))
    assert _violations(missing.value) == {"start_time"}
    with pytest.raises(InvalidArgument) as too_long:
        await world.reports.get_visitor_report(
            pb.GetVisitorReportRequest(start_time=ts(DAY3), end_time=ts(DAY3), channel="x" * 300)
        )
    assert "channel" in _violations(too_long.value)


def _now_range() -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    return {"start_time": _stamp(now - hour), "end_time": _stamp(now + hour)}


def _stamp(at: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


async def test_bots_per_bot_as_their_stats_count_them(desk: Desk) -> None:  # noqa: F811
    await serve(desk.bots, menu_bot(channels=("web",), max_misses=2))
    await desk.write("hi", customer="k1")
    await desk.write("what", customer="k1")
    await desk.write("huh", customer="k1")
    async with ReportClient(desk.api.target, await desk.api.token(T, "supervisor")) as r:
        report = await r.get_bot_report(pb.GetBotReportRequest(**_now_range()))
    stats = await desk.stats("menu")
    assert [
        (b.bot, b.started, b.finished_in_bot, b.handed_off, b.could_not_answer) for b in report.rows
    ] == [("bots/menu", 1, 0, 1, 1)]
    assert (stats.handed_off, stats.could_not_answer) == (1, 1)
