"""BroadcastService through the SDK over real gRPC and PostgreSQL: drafts checked whole (every
bad field named), audiences from groups, tags, filters, picked customers and CSV/XLSX files
(phones normalised, each address once), schedules in the tenant's time zone, roles, and the
gateways' claims and reports (sessions, leases, repeats)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import AsyncIterator

import asyncpg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from openpyxl import Workbook
from usher.client import (
    AdminClient,
    BroadcastClient,
    CustomerClient,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    UsherError,
)
from usher.v1 import admin_service_pb2, channel_pb2, tenant_pb2
from usher.v1 import broadcast_service_pb2 as pb
from usher.v1 import customer_pb2 as cpb
from usher.v1 import customer_service_pb2 as cspb

from tests.integration.api_kit import Running, running

TENANT = "acme"


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


async def _setup(api: Running) -> tuple[BroadcastClient, CustomerClient, AdminClient]:
    token = await api.token(TENANT, "admin")
    admin = AdminClient(api.target, token)
    for channel_id, kind in (
        ("sms", channel_pb2.CHANNEL_TYPE_SMS),
        ("wa", channel_pb2.CHANNEL_TYPE_WHATSAPP),
        ("web", channel_pb2.CHANNEL_TYPE_WEB_CHAT),
    ):
        await admin.create_channel(
            admin_service_pb2.CreateChannelRequest(
                channel_id=channel_id, channel=channel_pb2.Channel(type=kind)
            )
        )
    customers = CustomerClient(api.target, token)
    for i, (name, phone, tags) in enumerate(
        [
            ("Chan Tai Man", "+85291234560", ["vip"]),
            ("Wong Siu Ming", "+85291234561", ["new"]),
            ("Lee Ka Yan", "+85291234562", []),
            ("No Phone", "", ["vip"]),
        ]
    ):
        await customers.create_customer(
            cspb.CreateCustomerRequest(
                customer_id=f"c{i}",
                customer=cpb.Customer(display_name=name, phone=phone, tags=tags),
            )
        )
    await customers.create_customer_group(
        cspb.CreateCustomerGroupRequest(group_id="g", group=cpb.CustomerGroup(display_name="G"))
    )
    await customers.add_customer_group_members(
        cspb.AddCustomerGroupMembersRequest(group="customerGroups/g", customers=["customers/c2"])
    )
    return BroadcastClient(api.target, token), customers, admin


def violations(error: UsherError) -> dict[str, str]:
    found = error.detail(error_details_pb2.BadRequest)
    assert found is not None
    return {v.field: v.description for v in found.field_violations}


def draft(channel: str = "sms", **audience: object) -> pb.Broadcast:
    return pb.Broadcast(
        display_name="Promo",
        channel=f"channels/{channel}",
        content=pb.BroadcastContent(text="Hi {customer.name}"),
        audience=pb.BroadcastAudience(**audience),  # type: ignore[arg-type]
    )


def csv_file(text: str, region: str = "") -> pb.BroadcastFile:
    return pb.BroadcastFile(
        content=text.encode(), format=cspb.FILE_FORMAT_CSV, default_region=region
    )


async def test_drafts_are_checked_whole(api: Running) -> None:
    client, _, _ = await _setup(api)
    bad = pb.Broadcast(
        channel="channels/sms",
        content=pb.BroadcastContent(
            text="Hi {customer.nickname} {", whatsapp_template=pb.WhatsAppTemplateContent(name="x")
        ),
    )
    with pytest.raises(InvalidArgument) as refused:
        await client.create_broadcast(pb.CreateBroadcastRequest(broadcast=bad))
    assert set(violations(refused.value)) == {
        "broadcast.content.text",
        "broadcast.content.whatsapp_template",
        "broadcast.audience",
    }
    assert (
        "unknown variable 'customer.nickname'"
        in violations(refused.value)["broadcast.content.text"]
    )
    wa = pb.Broadcast(
        channel="channels/wa",
        content=pb.BroadcastContent(
            whatsapp_template=pb.WhatsAppTemplateContent(parameters=["{customer.name}", " "])
        ),
        audience=pb.BroadcastAudience(tags=["vip"]),
    )
    with pytest.raises(InvalidArgument) as refused:
        await client.create_broadcast(pb.CreateBroadcastRequest(broadcast=wa))
    assert set(violations(refused.value)) == {
        "broadcast.content.whatsapp_template.name",
        "broadcast.content.whatsapp_template.language",
        "broadcast.content.whatsapp_template.parameters[1]",
    }
    with pytest.raises(InvalidArgument) as refused:
        await client.create_broadcast(pb.CreateBroadcastRequest(broadcast=draft("web", tags=["x"])))
    assert violations(refused.value) == {"broadcast.channel": "a web_chat channel cannot broadcast"}
    with pytest.raises(NotFound):
        await client.create_broadcast(
            pb.CreateBroadcastRequest(broadcast=draft("nope", tags=["x"]))
        )
    with pytest.raises(NotFound) as missing:
        await client.create_broadcast(
            pb.CreateBroadcastRequest(broadcast=draft(groups=["customerGroups/ghost"]))
        )
    info = missing.value.detail(error_details_pb2.ResourceInfo)
    assert info is not None and info.resource_name == "customerGroups/ghost"
    file = csv_file("name,phone\nA,+85291234567\nB,12\nC,\n")
    with pytest.raises(InvalidArgument) as refused:
        await client.create_broadcast(pb.CreateBroadcastRequest(broadcast=draft(file=file)))
    assert violations(refused.value) == {
        "broadcast.audience.file.rows[3].phone": (
            "not a phone number (start it with + or give a region)"
        ),
        "broadcast.audience.file.rows[4].phone": "required",
    }
    assert (await client.list_broadcasts(pb.ListBroadcastsRequest())).broadcasts == []


async def test_audiences_preview_each_address_once(api: Running) -> None:
    client, _, _ = await _setup(api)
    file = csv_file("Name,Phone,plan\nFile One,9123 4560,gold\nFile Two,91234599,silver\n", "hk")
    created = await client.create_broadcast(
        pb.CreateBroadcastRequest(
            broadcast_id="mix",
            broadcast=draft(
                groups=["customerGroups/g"],
                tags=["vip"],
                customers=["customers/c1"],
                filter=cpb.CustomerFilter(query="Wong"),
                file=file,
            ),
        )
    )
    assert created.broadcast.state == pb.BROADCAST_STATE_DRAFT
    assert created.broadcast.audience.file.rows == 2
    assert created.broadcast.audience.file.content == b""  # not echoed
    preview = await client.preview_broadcast(
        pb.PreviewBroadcastRequest(name="broadcasts/mix", sample_size=5)
    )
    # c0 (tag), c1 (picked and the filter), c2 (group), c3 has no phone; the file's first row is
    # c0's number again, its second a new one
    assert (preview.recipients, preview.no_address, preview.duplicates) == (4, 1, 1)
    assert [(s.customer, s.address, s.text) for s in preview.samples] == [
        ("customers/c0", "+85291234560", "Hi Chan Tai Man"),
        ("customers/c1", "+85291234561", "Hi Wong Siu Ming"),
        ("customers/c2", "+85291234562", "Hi Lee Ka Yan"),
        ("", "+85291234599", "Hi File Two"),
    ]

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["phone", "name"])
    sheet.append(["+85291234570", "Xlsx"])
    content = io.BytesIO()
    book.save(content)
    xlsx = pb.BroadcastFile(content=content.getvalue(), format=cspb.FILE_FORMAT_XLSX)
    await client.create_broadcast(
        pb.CreateBroadcastRequest(broadcast_id="sheet", broadcast=draft(file=xlsx))
    )
    preview = await client.preview_broadcast(pb.PreviewBroadcastRequest(name="broadcasts/sheet"))
    assert [(s.address, s.text) for s in preview.samples] == [("+85291234570", "Hi Xlsx")]


async def test_schedules_in_the_tenant_zone(api: Running) -> None:
    client, _, admin = await _setup(api)
    await admin.update_tenant_settings(
        admin_service_pb2.UpdateTenantSettingsRequest(
            settings=tenant_pb2.TenantSettings(time_zone="America/New_York"),
            update_mask=field_mask_pb2.FieldMask(paths=["time_zone"]),
        )
    )
    year = dt.datetime.now(dt.UTC).year + 1
    await client.create_broadcast(
        pb.CreateBroadcastRequest(broadcast_id="later", broadcast=draft(tags=["vip"]))
    )
    with pytest.raises(InvalidArgument) as refused:  # clocks jump from 2:00 to 3:00 that night
        await client.send_broadcast(
            pb.SendBroadcastRequest(
                name="broadcasts/later",
                local_schedule_time=f"{year}-03-{_second_sunday(year, 3)}T02:30",
            )
        )
    assert "does not exist" in violations(refused.value)["local_schedule_time"]
    with pytest.raises(InvalidArgument):
        await client.send_broadcast(
            pb.SendBroadcastRequest(name="broadcasts/later", local_schedule_time="2020-01-01T09:00")
        )
    sent = await client.send_broadcast(
        pb.SendBroadcastRequest(name="broadcasts/later", local_schedule_time=f"{year}-07-04T09:30")
    )
    b = sent.broadcast
    assert b.state == pb.BROADCAST_STATE_SCHEDULED
    assert b.time_zone == "America/New_York"
    assert b.schedule_time.ToDatetime(tzinfo=dt.UTC) == dt.datetime(
        year, 7, 4, 13, 30, tzinfo=dt.UTC
    )
    assert b.stats.queued == 1 and b.stats.left_out == 1  # c3 has no phone
    with pytest.raises(FailedPrecondition):  # sent once
        await client.send_broadcast(pb.SendBroadcastRequest(name="broadcasts/later"))
    with pytest.raises(FailedPrecondition):  # cancel it first
        await client.delete_broadcast(pb.DeleteBroadcastRequest(name="broadcasts/later"))

    gateway = BroadcastClient(api.target, await api.token(TENANT, "gateway"))
    claim = pb.ClaimBroadcastSendsRequest(
        channel="sms",
        sender="gw",
        session="s1",
        max_sends=10,
        lease=duration_pb2.Duration(seconds=30),
    )
    assert list((await gateway.claim_broadcast_sends(claim)).sends) == []  # not due yet
    cancelled = await client.cancel_broadcast(pb.CancelBroadcastRequest(name="broadcasts/later"))
    assert cancelled.broadcast.stats.cancelled == 1
    await client.delete_broadcast(pb.DeleteBroadcastRequest(name="broadcasts/later"))
    with pytest.raises(NotFound):
        await client.get_broadcast(pb.GetBroadcastRequest(name="broadcasts/later"))


def _second_sunday(year: int, month: int) -> str:
    first = dt.date(year, month, 1)
    return f"{1 + (6 - first.weekday()) % 7 + 7:02d}"


async def test_roles(api: Running) -> None:
    client, _, _ = await _setup(api)
    await client.create_broadcast(
        pb.CreateBroadcastRequest(broadcast_id="b", broadcast=draft(tags=["vip"]))
    )
    agent = BroadcastClient(api.target, await api.token(TENANT, "agent", "ann"))
    with pytest.raises(PermissionDenied):
        await agent.get_broadcast(pb.GetBroadcastRequest(name="broadcasts/b"))
    gateway = BroadcastClient(api.target, await api.token(TENANT, "gateway"))
    with pytest.raises(PermissionDenied):
        await gateway.get_broadcast(pb.GetBroadcastRequest(name="broadcasts/b"))
    claim = pb.ClaimBroadcastSendsRequest(
        channel="sms",
        sender="gw",
        session="s1",
        max_sends=10,
        lease=duration_pb2.Duration(seconds=30),
    )
    with pytest.raises(PermissionDenied):
        await client.claim_broadcast_sends(claim)
    supervisor = BroadcastClient(api.target, await api.token(TENANT, "supervisor"))
    found = await supervisor.get_broadcast(pb.GetBroadcastRequest(name="broadcasts/b"))
    assert found.broadcast.creator.startswith("credentials/")


async def test_claims_and_reports(api: Running) -> None:
    client, _, _ = await _setup(api)
    await client.create_broadcast(
        pb.CreateBroadcastRequest(
            broadcast_id="b",
            broadcast=draft(customers=["customers/c0", "customers/c1", "customers/c2"]),
        )
    )
    await client.send_broadcast(pb.SendBroadcastRequest(name="broadcasts/b"))
    gateway = BroadcastClient(api.target, await api.token(TENANT, "gateway"))

    def claim(session: str, n: int = 10, sender: str = "gw") -> pb.ClaimBroadcastSendsRequest:
        return pb.ClaimBroadcastSendsRequest(
            channel="sms",
            sender=sender,
            session=session,
            max_sends=n,
            lease=duration_pb2.Duration(seconds=60),
        )

    first = (await gateway.claim_broadcast_sends(claim("s1", 2))).sends
    assert [(s.address, s.text, s.previous_claims) for s in first] == [
        ("+85291234560", "Hi Chan Tai Man", 0),
        ("+85291234561", "Hi Wong Siu Ming", 0),
    ]
    assert first[0].idempotency_key == first[0].recipient == "broadcasts/b/recipients/1"
    assert [
        s.address for s in (await gateway.claim_broadcast_sends(claim("x", 10, "other"))).sends
    ] == ["+85291234562"]  # another gateway never gets what is claimed
    sent = pb.BroadcastSendResult(
        recipient=first[0].recipient,
        outcome=pb.BROADCAST_SEND_OUTCOME_SENT,
        provider_message_id="SM1",
        session="s1",
    )
    report = pb.ReportBroadcastSendsRequest(channel="sms", results=[sent])
    assert (await gateway.report_broadcast_sends(report)).applied == 1
    assert (await gateway.report_broadcast_sends(report)).applied == 0  # a repeat changes nothing
    stale = pb.BroadcastSendResult(
        recipient=first[1].recipient, outcome=pb.BROADCAST_SEND_OUTCOME_RELEASED, session="old"
    )
    stale_report = pb.ReportBroadcastSendsRequest(channel="sms", results=[stale])
    assert (await gateway.report_broadcast_sends(stale_report)).applied == 0

    # the same sender restarted (a new session) gets its unfinished send back at once, flagged
    again = (await gateway.claim_broadcast_sends(claim("s2"))).sends
    assert [(s.recipient, s.previous_claims) for s in again] == [(first[1].recipient, 1)]
    assert again[0].first_claim_time == first[1].claim_time
    with pytest.raises(InvalidArgument) as refused:
        await gateway.report_broadcast_sends(
            pb.ReportBroadcastSendsRequest(
                channel="sms", results=[pb.BroadcastSendResult(recipient="nope", session="s2")]
            )
        )
    assert set(violations(refused.value)) == {"results[0].recipient"}
    delivered = pb.BroadcastSendResult(
        outcome=pb.BROADCAST_SEND_OUTCOME_DELIVERED, provider_message_id="SM1"
    )
    await gateway.report_broadcast_sends(
        pb.ReportBroadcastSendsRequest(channel="sms", results=[delivered])
    )
    paused = await client.pause_broadcast(pb.PauseBroadcastRequest(name="broadcasts/b"))
    assert (paused.broadcast.stats.delivered, paused.broadcast.stats.sending) == (1, 2)
    release = pb.BroadcastSendResult(
        recipient=again[0].recipient, outcome=pb.BROADCAST_SEND_OUTCOME_RELEASED, session="s2"
    )
    answer = await gateway.report_broadcast_sends(
        pb.ReportBroadcastSendsRequest(channel="sms", results=[release])
    )
    assert list(answer.stopped_broadcasts) == ["broadcasts/b"]
    assert list((await gateway.claim_broadcast_sends(claim("s3"))).sends) == []  # paused
    await client.resume_broadcast(pb.ResumeBroadcastRequest(name="broadcasts/b"))
    back = (await gateway.claim_broadcast_sends(claim("s3"))).sends
    assert [(s.recipient, s.previous_claims) for s in back] == [(again[0].recipient, 1)]
    for s, session in ((back[0], "s3"),):
        failed = pb.BroadcastSendResult(
            recipient=s.recipient,
            outcome=pb.BROADCAST_SEND_OUTCOME_FAILED,
            error="21211 invalid To",
            session=session,
        )
        await gateway.report_broadcast_sends(
            pb.ReportBroadcastSendsRequest(channel="sms", results=[failed])
        )
    found = await client.get_broadcast(pb.GetBroadcastRequest(name="broadcasts/b"))
    assert (found.broadcast.stats.failed, found.broadcast.stats.sending) == (1, 1)
    assert found.broadcast.state == pb.BROADCAST_STATE_SENDING
    other = pb.BroadcastSendResult(
        recipient="broadcasts/b/recipients/3",
        outcome=pb.BROADCAST_SEND_OUTCOME_SENT,
        provider_message_id="SM3",
        session="x",
    )
    await gateway.report_broadcast_sends(
        pb.ReportBroadcastSendsRequest(channel="sms", results=[other])
    )
    found = await client.get_broadcast(pb.GetBroadcastRequest(name="broadcasts/b"))
    assert found.broadcast.state == pb.BROADCAST_STATE_COMPLETED
    assert found.broadcast.end_time.seconds > 0
    listed = await client.list_broadcast_recipients(
        pb.ListBroadcastRecipientsRequest(
            parent="broadcasts/b", state=pb.BROADCAST_RECIPIENT_STATE_FAILED
        )
    )
    assert [(r.address, r.error) for r in listed.recipients] == [
        ("+85291234561", "21211 invalid To")
    ]
    page = await client.list_broadcast_recipients(
        pb.ListBroadcastRecipientsRequest(parent="broadcasts/b", page_size=2)
    )
    rest = await client.list_broadcast_recipients(
        pb.ListBroadcastRecipientsRequest(parent="broadcasts/b", page_token=page.next_page_token)
    )
    assert [r.name[-1] for r in [*page.recipients, *rest.recipients]] == ["1", "2", "3"]
    assert timestamp_pb2.Timestamp() != page.recipients[0].send_time
