"""QR codes, tracking links and quotas through the SDK against a real server (gRPC on loopback,
the web port over real HTTP, PostgreSQL): a code's PNG decodes to its tracking link; a scan
redirects and counts (total and unique per day); a deactivated, expired or scheduled code
answers a page; conversations started with the trigger phrase are counted; the list exports
with its counts; quota refusals (QR codes, bots, customers, a monthly metric) change nothing
and carry a QuotaFailure; ``usher admin quota`` sets and shows limits."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import zxingcpp
from click.testing import CliRunner, Result
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from openpyxl import load_workbook
from PIL import Image
from usher.client import (
    AdminClient,
    AlreadyExists,
    BotClient,
    CustomerClient,
    GatewayClient,
    InvalidArgument,
    PermissionDenied,
    QrCodeClient,
    QuotaClient,
    ResourceExhausted,
)
from usher.v1 import admin_service_pb2 as apb
from usher.v1 import bot_pb2 as b
from usher.v1 import bot_service_pb2 as bs
from usher.v1 import channel_pb2, conversation_pb2, queue_pb2, tenant_pb2
from usher.v1 import conversation_service_pb2 as cs
from usher.v1 import customer_pb2 as cpb
from usher.v1 import customer_service_pb2 as cust
from usher.v1 import qr_code_service_pb2 as pb

from core.admin_cli import admin as admin_cli
from core.api.web import WebOptions
from core.store import quotas
from tests.integration.api_kit import Running, running
from tests.integration.gateways.kit import free_port

T = "acme"
PHONE_UA = "Mozilla/5.0 (iPhone) phone-a"


@dataclass
class Desk:
    api: Running
    pool: asyncpg.Pool
    codes: QrCodeClient
    quotas: QuotaClient
    admin: AdminClient
    gateway: GatewayClient
    web: str

    async def create(self, **fields: object) -> pb.QrCode:
        code = pb.QrCode(**fields)  # type: ignore[arg-type]
        return (await self.codes.create_qr_code(pb.CreateQrCodeRequest(qr_code=code))).qr_code

    async def get(self, name: str) -> pb.QrCode:
        return (await self.codes.get_qr_code(pb.GetQrCodeRequest(name=name))).qr_code

    async def rows(self, table: str) -> int:
        found: int = await self.pool.fetchval(f"SELECT count(*) FROM {table}")
        return found


def whatsapp(phrase: str = "Hi, promo A") -> pb.QrCodeTarget:
    return pb.QrCodeTarget(
        whatsapp=pb.WhatsAppTarget(phone_number="+85291234567", trigger_phrase=phrase)
    )


def at(when: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    async with running(
        pool, redis_url, with_core=True, web=WebOptions("127.0.0.1", port), public_url=web
    ) as api:
        supervisor = await api.token(T, "supervisor")
        async with (
            QrCodeClient(api.target, supervisor) as codes,
            QuotaClient(api.target, supervisor) as quota,
            AdminClient(api.target, await api.token(T, "admin")) as admin,
            GatewayClient(api.target, await api.token(T, "gateway")) as gateway,
        ):
            await admin.create_queue(
                apb.CreateQueueRequest(queue_id="support", queue=queue_pb2.Queue())
            )
            await admin.update_tenant_settings(
                apb.UpdateTenantSettingsRequest(
                    settings=tenant_pb2.TenantSettings(default_queue="queues/support"),
                    update_mask=field_mask_pb2.FieldMask(paths=["default_queue"]),
                )
            )
            yield Desk(api, pool, codes, quota, admin, gateway, web)


async def scan(url: str, agent: str = PHONE_UA, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        return await http.request(method, url, headers={"user-agent": agent})


# --- images, scans, pages ------------------------------------------------------------------------


async def test_the_png_decodes_to_the_tracking_link_and_a_scan_redirects_and_counts(
    desk: Desk,
) -> None:
    code = await desk.create(
        display_name="Promo A", campaign="Spring", place="Mong Kok shop", target=whatsapp()
    )
    assert code.name.startswith("qrCodes/") and code.state == pb.QR_CODE_STATE_ACTIVE
    short = code.name.removeprefix("qrCodes/")
    assert code.tracking_url == f"{desk.web}/q/{short}"
    assert code.target_url == "https://wa.me/85291234567?text=Hi%2C%20promo%20A"

    image = await desk.codes.get_qr_code_image(
        pb.GetQrCodeImageRequest(name=code.name, format=pb.QR_CODE_IMAGE_FORMAT_PNG, size=300)
    )
    assert image.content_type == "image/png" and image.tracking_url == code.tracking_url
    png = Image.open(io.BytesIO(image.data))
    assert png.size == (300, 300)
    assert [found.text for found in zxingcpp.read_barcodes(png)] == [code.tracking_url]
    svg = await desk.codes.get_qr_code_image(
        pb.GetQrCodeImageRequest(name=code.name, format=pb.QR_CODE_IMAGE_FORMAT_SVG, size=200)
    )
    assert svg.content_type == "image/svg+xml"
    assert b'width="200" height="200"' in svg.data and b"<path" in svg.data

    first = await scan(code.tracking_url)
    assert first.status_code == 302 and first.headers["location"] == code.target_url
    assert first.headers["cache-control"] == "no-store"
    assert (await scan(code.tracking_url)).status_code == 302  # the same phone again
    assert (await scan(code.tracking_url, agent="Android phone-b")).status_code == 302
    assert (await scan(code.tracking_url, method="HEAD")).status_code == 302  # not counted

    counts = (await desk.get(code.name)).counts
    assert (counts.scans, counts.unique_scans) == (3, 2)
    stats = await desk.codes.get_qr_code_stats(pb.GetQrCodeStatsRequest(name=code.name))
    assert len(stats.days) == 30 and (stats.total.scans, stats.total.unique_scans) == (3, 2)
    assert (stats.days[-1].counts.scans, stats.days[-1].counts.unique_scans) == (3, 2)
    # visitors are 16-byte salted hashes, no address anywhere
    hashes = await desk.pool.fetch("SELECT visitor FROM qr_code_visitors")
    assert len(hashes) == 2 and all(len(r["visitor"]) == 16 for r in hashes)


async def test_inactive_expired_scheduled_and_unknown_codes_answer_a_page(desk: Desk) -> None:
    now = dt.datetime.now(dt.UTC)
    live = await desk.create(display_name="Live", target=whatsapp("live"))
    ended = await desk.create(
        display_name="Summer sale",
        start_time=at(now - dt.timedelta(days=10)),
        end_time=at(now - dt.timedelta(days=1)),
        target=pb.QrCodeTarget(url=pb.UrlTarget(url="https://shop.example.com/summer")),
    )
    later = await desk.create(
        display_name="Winter sale",
        start_time=at(now + dt.timedelta(days=5)),
        target=pb.QrCodeTarget(line=pb.LineTarget(basic_id="@shop")),
    )
    assert ended.state == pb.QR_CODE_STATE_EXPIRED and later.state == pb.QR_CODE_STATE_SCHEDULED
    assert later.target_url == "https://line.me/R/ti/p/%40shop"

    gone = await scan(ended.tracking_url)
    assert gone.status_code == 410 and "Summer sale" in gone.text and "ended" in gone.text
    soon = await scan(later.tracking_url)
    assert soon.status_code == 200 and "starts on" in soon.text and "location" not in soon.headers

    off = await desk.codes.deactivate_qr_code(pb.DeactivateQrCodeRequest(name=live.name))
    assert off.qr_code.state == pb.QR_CODE_STATE_INACTIVE
    page = await scan(live.tracking_url)
    assert page.status_code == 410 and "text/html" in page.headers["content-type"]
    on = await desk.codes.activate_qr_code(pb.ActivateQrCodeRequest(name=live.name))
    assert on.qr_code.state == pb.QR_CODE_STATE_ACTIVE
    assert (await scan(live.tracking_url)).status_code == 302  # re-activated
    assert (await scan(f"{desk.web}/q/nosuchcode")).status_code == 404
    assert (await desk.get(live.name)).counts.scans == 1  # pages count nothing
    assert (await desk.get(ended.name)).counts.scans == 0

    async def listed(which: pb.QrCodeListFilter.ValueType) -> set[str]:
        found = await desk.codes.list_qr_codes(pb.ListQrCodesRequest(filter=which))
        return {c.display_name for c in found.qr_codes}

    await desk.codes.deactivate_qr_code(pb.DeactivateQrCodeRequest(name=live.name))
    assert await listed(pb.QR_CODE_LIST_FILTER_ACTIVE) == {"Winter sale"}
    assert await listed(pb.QR_CODE_LIST_FILTER_INACTIVE) == {"Live", "Summer sale"}
    assert len(await listed(pb.QR_CODE_LIST_FILTER_UNSPECIFIED)) == 3
    first = await desk.codes.list_qr_codes(pb.ListQrCodesRequest(page_size=2))
    rest = await desk.codes.list_qr_codes(
        pb.ListQrCodesRequest(page_size=2, page_token=first.next_page_token)
    )
    names = [c.display_name for c in [*first.qr_codes, *rest.qr_codes]]
    assert names == ["Winter sale", "Summer sale", "Live"] and not rest.next_page_token


async def test_conversations_started_with_the_trigger_phrase_are_counted(desk: Desk) -> None:
    code = await desk.create(display_name="Promo A", target=whatsapp("Hi, promo A"))
    other = await desk.create(display_name="Promo B", target=whatsapp("Hi, promo B"))

    async def write(customer: str, text: str, key: str) -> None:
        await desk.gateway.receive_customer_message(
            cs.ReceiveCustomerMessageRequest(
                channel="wa",
                customer=conversation_pb2.CustomerIdentity(external_id=customer),
                message=cs.CustomerMessage(text=text, provider_message_id=key),
            )
        )

    await write("k1", "hi, PROMO a \n", "m1")  # trimmed, any case: tied
    await write("k2", "Hi, promo A", "m2")
    await write("k3", "hello", "m3")  # the phrase second is not a start from the code
    await write("k3", "Hi, promo A", "m4")
    await write("k4", "Hi, promo A please", "m5")  # not the phrase
    counts = (await desk.get(code.name)).counts
    assert counts.conversations == 2
    assert (await desk.get(other.name)).counts.conversations == 0
    stats = await desk.codes.get_qr_code_stats(pb.GetQrCodeStatsRequest(name=code.name))
    assert stats.total.conversations == 2

    # the list and its export carry the counts
    chunks = [
        c
        async for c in desk.codes.export_qr_codes(
            pb.ExportQrCodesRequest(format=cust.FILE_FORMAT_CSV)
        )
    ]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert {(r["name"], r["conversations"], r["state"]) for r in rows} == {
        ("Promo A", "2", "active"),
        ("Promo B", "0", "active"),
    }
    assert {r["tracking_url"] for r in rows} == {code.tracking_url, other.tracking_url}
    xlsx = [
        c
        async for c in desk.codes.export_qr_codes(
            pb.ExportQrCodesRequest(format=cust.FILE_FORMAT_XLSX)
        )
    ]
    sheet = load_workbook(io.BytesIO(b"".join(xlsx)), read_only=True).active
    assert sheet is not None
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0][:2] == ["code", "name"] and len(table) == 3


async def test_conversations_opened_with_the_reference_are_counted(desk: Desk) -> None:
    page = "https://shop.example/help"
    code = await desk.create(
        display_name="Poster", target=pb.QrCodeTarget(web_chat=pb.WebChatTarget(page_url=page))
    )
    named = await desk.create(
        display_name="Flyer",
        target=pb.QrCodeTarget(web_chat=pb.WebChatTarget(page_url=page, reference="flyer-7")),
    )
    poster_ref = code.name.removeprefix("qrCodes/")  # no reference given: the code is it
    assert code.target_url.endswith(f"ref={poster_ref}")

    async def start(customer: str, reference: str) -> None:
        await desk.gateway.start_conversation(
            cs.StartConversationRequest(
                channel="webchat",
                customer=conversation_pb2.CustomerIdentity(external_id=customer),
                reference=reference,
            )
        )

    await start("v1", poster_ref)
    await start("v2", poster_ref)
    await start("v3", "flyer-7")
    await start("v4", "")  # no reference: tied to nothing
    await desk.gateway.receive_customer_message(  # a message that starts one carries it too
        cs.ReceiveCustomerMessageRequest(
            channel="webchat",
            customer=conversation_pb2.CustomerIdentity(external_id="v5"),
            message=cs.CustomerMessage(text="hello", provider_message_id="w5"),
            start=cs.ConversationOptions(reference="flyer-7"),
        )
    )
    assert (await desk.get(code.name)).counts.conversations == 2
    assert (await desk.get(named.name)).counts.conversations == 2
    stats = await desk.codes.get_qr_code_stats(pb.GetQrCodeStatsRequest(name=named.name))
    assert stats.total.conversations == 2 and sum(d.counts.conversations for d in stats.days) == 2
    stored = await desk.pool.fetch(
        "SELECT reference, count(*) AS n FROM conversations GROUP BY reference"
    )
    assert {(r["reference"], r["n"]) for r in stored} == {("", 1), (poster_ref, 2), ("flyer-7", 2)}


async def test_targets_and_phrases_are_checked(desk: Desk) -> None:
    await desk.create(display_name="A", target=whatsapp("Hi, promo A"))
    with pytest.raises(AlreadyExists) as taken:  # the phrase ties conversations: unique
        await desk.create(display_name="B", target=whatsapp("  hi, PROMO a"))
    bad = taken.value.detail(error_details_pb2.BadRequest)
    assert bad is not None
    assert bad.field_violations[0].field == "qr_code.target.whatsapp.trigger_phrase"
    with pytest.raises(InvalidArgument) as refused:
        await desk.create(
            display_name="",
            target=pb.QrCodeTarget(url=pb.UrlTarget(url="http://plain.example.com")),
        )
    found = refused.value.detail(error_details_pb2.BadRequest)
    assert found is not None
    assert {v.field for v in found.field_violations} == {
        "qr_code.display_name",
        "qr_code.target.url.url",
    }
    web = await desk.create(
        display_name="Web",
        target=pb.QrCodeTarget(
            web_chat=pb.WebChatTarget(page_url="https://example.com/chat?lang=en")
        ),
    )
    short = web.name.removeprefix("qrCodes/")
    assert web.target_url == f"https://example.com/chat?lang=en&ref={short}"
    changed = await desk.codes.update_qr_code(
        pb.UpdateQrCodeRequest(
            qr_code=pb.QrCode(name=web.name, place="Central"),
            update_mask=field_mask_pb2.FieldMask(paths=["place"]),
        )
    )
    assert (changed.qr_code.place, changed.qr_code.display_name) == ("Central", "Web")
    assert await desk.rows("qr_codes") == 2


# --- quotas -------------------------------------------------------------------------------------


def quota_of(error: ResourceExhausted) -> error_details_pb2.QuotaFailure.Violation:
    found = error.detail(error_details_pb2.QuotaFailure)
    assert found is not None and len(found.violations) == 1
    return found.violations[0]


async def test_quota_refusals_change_nothing_and_name_the_metric(desk: Desk) -> None:
    await quotas.set_limit(desk.pool, T, "qr_codes", 1)
    await quotas.set_limit(desk.pool, T, "bots", 0)
    await quotas.set_limit(desk.pool, T, "customers", 0)
    await desk.create(display_name="One", target=whatsapp("one"))
    with pytest.raises(ResourceExhausted) as full:
        await desk.create(display_name="Two", target=whatsapp("two"))
    violation = quota_of(full.value)
    assert (violation.quota_metric, violation.quota_value) == ("qr_codes", 1)
    assert violation.subject == "tenant:qr_codes"
    assert await desk.rows("qr_codes") == 1

    await desk.admin.create_channel(
        apb.CreateChannelRequest(
            channel_id="web", channel=channel_pb2.Channel(type=channel_pb2.CHANNEL_TYPE_WEB_CHAT)
        )
    )
    supervisor = await desk.api.token(T, "supervisor")
    async with BotClient(desk.api.target, supervisor) as bots:
        with pytest.raises(ResourceExhausted) as no_bots:
            await bots.create_bot(
                bs.CreateBotRequest(
                    bot_id="greeter",
                    bot=b.Bot(
                        display_name="Greeter",
                        channels=["channels/web"],
                        triggers=[b.BotTrigger(new_conversation=b.NewConversationTrigger())],
                        flow=b.BotFlow(
                            start_step="hi",
                            steps=[
                                b.BotStep(
                                    id="hi",
                                    message=b.MessageStep(content=b.BotContent(body="Hi")),
                                )
                            ],
                        ),
                    ),
                )
            )
    assert quota_of(no_bots.value).quota_metric == "bots"
    assert await desk.rows("bots") == 0
    async with CustomerClient(desk.api.target, supervisor) as customers:
        with pytest.raises(ResourceExhausted) as no_customers:
            await customers.create_customer(
                cust.CreateCustomerRequest(customer=cpb.Customer(display_name="Kim"))
            )
    assert quota_of(no_customers.value).quota_metric == "customers"
    assert await desk.rows("customers") == 0

    # a monthly metric: a reservation past the limit is refused whole and consumes nothing
    await quotas.set_limit(desk.pool, T, "sms_per_month", 5)
    async with desk.pool.acquire() as conn, conn.transaction():
        await quotas.reserve(conn, T, "sms_per_month", 3)
    with pytest.raises(quotas.QuotaExceeded) as past:
        async with desk.pool.acquire() as conn, conn.transaction():
            await quotas.reserve(conn, T, "sms_per_month", 3)
    assert (past.value.limit, past.value.used, past.value.amount) == (5, 3, 3)

    read = {q.metric: q for q in (await desk.quotas.get_quotas()).quotas}
    assert list(read) == list(quotas.METRICS)
    assert (read["qr_codes"].used, read["qr_codes"].limit, read["qr_codes"].unlimited) == (
        1,
        1,
        False,
    )
    assert (read["bots"].used, read["bots"].limit) == (0, 0)
    sms = read["sms_per_month"]
    assert (sms.used, sms.limit) == (3, 5)
    assert sms.period_start_date.endswith("-01") and sms.period_end_date > sms.period_start_date
    assert read["broadcast_recipients"].unlimited and read["customer_groups"].unlimited

    async with QuotaClient(desk.api.target, await desk.api.token(T, "agent", "ann")) as agent:
        with pytest.raises(PermissionDenied):  # supervisors and admins read quotas
            await agent.get_quotas()

    await desk.codes.delete_qr_code(
        pb.DeleteQrCodeRequest(
            name="qrCodes/" + (await desk.pool.fetchval("SELECT code FROM qr_codes"))
        )
    )
    await desk.create(display_name="Two", target=whatsapp("two"))  # deleting freed room


async def test_racing_writers_count_in_turn(desk: Desk) -> None:
    await quotas.set_limit(desk.pool, T, "qr_codes", 3)
    results = await asyncio.gather(
        *(desk.create(display_name=f"C{i}", target=whatsapp(f"p{i}")) for i in range(8)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, pb.QrCode) for r in results) == 3
    assert all(isinstance(r, pb.QrCode | ResourceExhausted) for r in results)
    assert await desk.rows("qr_codes") == 3


# --- the command line ---------------------------------------------------------------------------


async def invoke(database_url: str, *args: str) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke,
        admin_cli,
        ["quota", *args, "--database-url", database_url],
        catch_exceptions=False,
    )


async def test_the_cli_sets_and_shows_limits(desk: Desk, database_url: str) -> None:
    done = await invoke(database_url, "set", "--tenant", T, "--metric", "qr_codes", "--limit", "2")
    assert done.exit_code == 0, done.output
    assert done.output.strip() == f"{T} qr_codes: 0 / 2"
    read = {q.metric: q for q in (await desk.quotas.get_quotas()).quotas}
    assert (read["qr_codes"].limit, read["qr_codes"].unlimited) == (2, False)

    shown = await invoke(database_url, "show", "--tenant", T)
    assert shown.exit_code == 0 and f"{T}\tqr_codes\t0 / 2" in shown.output
    assert f"{T}\tsms_per_month\t0 / unlimited (" in shown.output

    cleared = await invoke(
        database_url, "set", "--tenant", T, "--metric", "qr_codes", "--limit", "unlimited"
    )
    assert cleared.exit_code == 0 and "0 / unlimited" in cleared.output
    wrong = await invoke(
        database_url, "set", "--tenant", T, "--metric", "qr_codes", "--limit", "-1"
    )
    assert wrong.exit_code != 0
    unknown = await invoke(
        database_url, "set", "--tenant", "nobody", "--metric", "bots", "--limit", "1"
    )
    assert unknown.exit_code != 0 and "no such tenant" in unknown.output
