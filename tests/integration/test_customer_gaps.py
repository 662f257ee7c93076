"""The customer database's second round, over real gRPC and PostgreSQL through the SDK: notes
with files, groups as saved filters, usage limits an admin sets, and the import's clear rule,
dry run past the limit and owner check. Refusals change nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import asyncpg
import pytest
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    CustomerClient,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
)
from usher.v1 import admin_service_pb2 as apb
from usher.v1 import agent_pb2, conversation_pb2
from usher.v1 import customer_pb2 as cpb
from usher.v1 import customer_service_pb2 as pb

from core.store import quotas
from tests.integration.api_kit import Running, running

PDF = conversation_pb2.Attachment(
    name="contract.pdf",
    content_type="application/pdf",
    size=48_213,
    uri="https://files.example.com/t/acme/contract.pdf",
    sha256="ab" * 32,
)


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def sup(api: Running) -> AsyncIterator[CustomerClient]:
    async with CustomerClient(api.target, await api.token("acme", "supervisor")) as client:
        yield client


def violations(exc: InvalidArgument) -> dict[str, str]:
    bad = exc.detail(error_details_pb2.BadRequest)
    assert bad is not None
    return {v.field: v.description for v in bad.field_violations}


async def create(c: CustomerClient, **kw: object) -> cpb.Customer:
    response = await c.create_customer(pb.CreateCustomerRequest(customer=cpb.Customer(**kw)))  # type: ignore[arg-type]
    return response.customer


def csv_file(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


# --- notes with files ----------------------------------------------------------------------------


async def test_customer_notes_keep_their_files(api: Running, sup: CustomerClient) -> None:
    ann = await create(sup, display_name="Ann")
    added = await sup.add_customer_note(
        pb.AddCustomerNoteRequest(parent=ann.name, text="signed", attachments=[PDF])
    )
    assert list(added.note.attachments) == [PDF]
    files_only = await sup.add_customer_note(
        pb.AddCustomerNoteRequest(parent=ann.name, attachments=[PDF, PDF])
    )
    assert files_only.note.text == "" and len(files_only.note.attachments) == 2

    listed = await sup.list_customer_notes(pb.ListCustomerNotesRequest(parent=ann.name))
    assert [(n.text, list(n.attachments)) for n in listed.notes] == [
        ("", [PDF, PDF]),
        ("signed", [PDF]),
    ]


async def test_bad_files_on_a_customer_note_are_refused_and_nothing_is_kept(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    ann = await create(sup, display_name="Ann")
    nameless = conversation_pb2.Attachment(content_type="image/png", size=1, uri="https://x/y")
    huge = conversation_pb2.Attachment(
        name="a.iso", content_type="application/x-iso9660-image", size=2**31, uri="s3://b/a.iso"
    )
    with pytest.raises(InvalidArgument) as bad:
        await sup.add_customer_note(
            pb.AddCustomerNoteRequest(parent=ann.name, text="x", attachments=[nameless, huge])
        )
    assert set(violations(bad.value)) == {"attachments[0].name", "attachments[1].size"}
    with pytest.raises(InvalidArgument) as empty:
        await sup.add_customer_note(pb.AddCustomerNoteRequest(parent=ann.name))
    assert "text" in violations(empty.value)
    with pytest.raises(InvalidArgument) as many:  # the count, at the edge
        await sup.add_customer_note(
            pb.AddCustomerNoteRequest(parent=ann.name, attachments=[PDF] * 11)
        )
    assert "attachments" in violations(many.value)
    assert await pool.fetchval("SELECT count(*) FROM customer_notes") == 0


# --- groups as saved filters ---------------------------------------------------------------------


async def test_a_saved_filter_group_lists_the_customers_matching_it_now(
    api: Running, sup: CustomerClient
) -> None:
    ann = await create(sup, display_name="Ann", tags=["vip"], language="th")
    await create(sup, display_name="Bob", tags=["vip"], language="en")
    await create(sup, display_name="Cat", language="th")
    saved = cpb.CustomerFilter(tags=["vip"], language="th")
    group = (
        await sup.create_customer_group(
            pb.CreateCustomerGroupRequest(
                group_id="thai-vip", group=cpb.CustomerGroup(display_name="Thai VIP", filter=saved)
            )
        )
    ).group
    assert group.filter == saved and group.member_count == 1

    def members() -> pb.ListCustomersRequest:
        return pb.ListCustomersRequest(filter=cpb.CustomerFilter(group=group.name))

    assert [c.name for c in (await sup.list_customers(members())).customers] == [ann.name]
    dan = await create(sup, display_name="Dan", tags=["vip", "new"], language="th")
    listed = await sup.list_customers(members())
    assert {c.name for c in listed.customers} == {ann.name, dan.name}
    # further filters narrow the group
    narrowed = await sup.list_customers(
        pb.ListCustomersRequest(filter=cpb.CustomerFilter(group=group.name, tags=["new"]))
    )
    assert [c.name for c in narrowed.customers] == [dan.name]
    groups = await sup.list_customer_groups(pb.ListCustomerGroupsRequest())
    assert [(g.name, g.member_count, g.HasField("filter")) for g in groups.groups] == [
        ("customerGroups/thai-vip", 2, True)
    ]
    # members of a saved filter are not added by hand
    with pytest.raises(FailedPrecondition):
        await sup.add_customer_group_members(
            pb.AddCustomerGroupMembersRequest(group=group.name, customers=[ann.name])
        )
    # the export reads the same members
    exported = b"".join(
        [
            chunk
            async for chunk in sup.export_customers(
                pb.ExportCustomersRequest(
                    filter=cpb.CustomerFilter(group=group.name), format=pb.FILE_FORMAT_CSV
                )
            )
        ]
    )
    names = [row[1] for row in csv.reader(io.StringIO(exported.decode("utf-8-sig")))][1:]
    assert sorted(names) == ["Ann", "Dan"]


async def test_a_saved_filter_may_name_a_static_group_and_is_checked(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    ann = await create(sup, display_name="Ann", company="Acme Ltd")
    await create(sup, display_name="Bob", company="Acme Ltd")
    await sup.create_customer_group(pb.CreateCustomerGroupRequest(group_id="fair"))
    await sup.add_customer_group_members(
        pb.AddCustomerGroupMembersRequest(group="customerGroups/fair", customers=[ann.name])
    )
    within = (
        await sup.create_customer_group(
            pb.CreateCustomerGroupRequest(
                group_id="fair-acme",
                group=cpb.CustomerGroup(
                    filter=cpb.CustomerFilter(group="customerGroups/fair", company="acme")
                ),
            )
        )
    ).group
    assert within.member_count == 1

    bad = {
        "group.filter.group": cpb.CustomerFilter(group="customerGroups/fair-acme"),
        "group.filter.deleted": cpb.CustomerFilter(deleted=True),
        "group.filter.phone": cpb.CustomerFilter(phone="12345"),  # as ListCustomers' filter
    }
    for field, saved in bad.items():
        with pytest.raises(InvalidArgument) as refused:
            await sup.create_customer_group(
                pb.CreateCustomerGroupRequest(group_id="x", group=cpb.CustomerGroup(filter=saved))
            )
        assert field in violations(refused.value), field
    assert await pool.fetchval("SELECT count(*) FROM customer_groups") == 2


# --- usage limits --------------------------------------------------------------------------------


async def test_the_installation_sets_the_limits_and_writes_past_them_are_refused(
    api: Running, sup: CustomerClient
) -> None:
    await quotas.set_limit(api.pool, "acme", "customers", 1)
    await quotas.set_limit(api.pool, "acme", "customer_groups", 0)
    await create(sup, display_name="A")
    with pytest.raises(ResourceExhausted) as full:
        await create(sup, display_name="B")
    quota = full.value.detail(error_details_pb2.QuotaFailure)
    assert quota is not None
    violation = quota.violations[0]
    assert (violation.quota_metric, violation.quota_value) == ("customers", 1)
    with pytest.raises(ResourceExhausted):
        await sup.create_customer_group(pb.CreateCustomerGroupRequest(group_id="g"))
    usage = await sup.get_usage(pb.GetUsageRequest())
    assert (usage.customers.used, usage.customers.limit) == (1, 1)
    assert (usage.groups.used, usage.groups.limit) == (0, 0)
    # a tenant has no way to raise its own limits: CustomerService has no SetUsageLimits
    assert "SetUsageLimits" not in pb.DESCRIPTOR.services_by_name["CustomerService"].methods_by_name

    await quotas.set_limit(api.pool, "acme", "customers", None)  # unlimited again
    await quotas.set_limit(api.pool, "acme", "customer_groups", None)
    usage = await sup.get_usage(pb.GetUsageRequest())
    assert usage.customers.unlimited and usage.groups.unlimited
    await create(sup, display_name="B")
    await sup.create_customer_group(pb.CreateCustomerGroupRequest(group_id="g"))


# --- import: the clear rule, the dry run past the limit, owners ----------------------------------


async def test_an_empty_cell_clears_and_an_absent_column_keeps(
    api: Running, sup: CustomerClient
) -> None:
    F = cpb.CustomField
    await sup.create_custom_field(
        pb.CreateCustomFieldRequest(
            field_id="plan",
            field=F(type=cpb.CUSTOM_FIELD_TYPE_SINGLE_CHOICE, enabled=True, choices=["gold"]),
        )
    )
    header = ["external_id", "display_name", "company", "tags", "plan"]
    first = csv_file([header, ["e1", "Ann", "Acme", "a;b", "gold"]])
    await sup.import_customers(pb.ImportCustomersRequest(content=first, format=pb.FILE_FORMAT_CSV))

    cleared = csv_file([header, ["e1", "Ann", "", "", ""]])
    done = await sup.import_customers(
        pb.ImportCustomersRequest(content=cleared, format=pb.FILE_FORMAT_CSV)
    )
    assert (done.updated, done.unchanged) == (1, 0)
    again = await sup.import_customers(
        pb.ImportCustomersRequest(content=cleared, format=pb.FILE_FORMAT_CSV)
    )
    assert (again.updated, again.unchanged) == (0, 1)  # the same file changes nothing
    ann = (
        await sup.list_customers(
            pb.ListCustomersRequest(filter=cpb.CustomerFilter(external_id="e1"))
        )
    ).customers[0]
    assert (ann.company, list(ann.tags), dict(ann.fields)) == ("", [], {})

    # columns the file lacks are kept
    await sup.import_customers(
        pb.ImportCustomersRequest(
            content=csv_file([["external_id", "company"], ["e1", "Beta"]]),
            format=pb.FILE_FORMAT_CSV,
        )
    )
    ann = (
        await sup.list_customers(
            pb.ListCustomersRequest(filter=cpb.CustomerFilter(external_id="e1"))
        )
    ).customers[0]
    assert (ann.display_name, ann.company) == ("Ann", "Beta")


async def test_a_dry_run_past_the_limit_reports_it(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    await quotas.set_limit(api.pool, "acme", "customers", 1)
    content = csv_file([["external_id", "phone"], ["e1", "+85291234567"], ["e2", "bad"]])
    dry = await sup.import_customers(
        pb.ImportCustomersRequest(content=content, format=pb.FILE_FORMAT_CSV, dry_run=True)
    )
    assert not dry.committed and dry.created == 1
    assert [p.row for p in dry.problems] == [3]  # the rows' problems are all there
    assert dry.file_problems == {}  # the one good row fits

    two = csv_file([["external_id"], ["e1"], ["e2"]])
    dry = await sup.import_customers(
        pb.ImportCustomersRequest(content=two, format=pb.FILE_FORMAT_CSV, dry_run=True)
    )
    assert dry.created == 2 and "limit of 1" in dry.file_problems["quota"]
    with pytest.raises(ResourceExhausted):
        await sup.import_customers(
            pb.ImportCustomersRequest(content=two, format=pb.FILE_FORMAT_CSV)
        )
    assert await pool.fetchval("SELECT count(*) FROM customers") == 0


async def test_the_owner_column_names_an_agent_of_the_tenant(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    async with AdminClient(api.target, await api.token("acme", "admin")) as admin:
        await admin.create_agent(
            apb.CreateAgentRequest(agent_id="ann", agent=agent_pb2.Agent(capacity=1))
        )
    header = ["external_id", "owner", "visibility"]
    rows = [header, ["e1", "ann", "private"], ["e2", "agents/ann", ""], ["e3", "zoe", ""]]
    dry = await sup.import_customers(
        pb.ImportCustomersRequest(content=csv_file(rows), format=pb.FILE_FORMAT_CSV, dry_run=True)
    )
    assert {p.row: dict(p.problems) for p in dry.problems} == {
        4: {"owner": "not an agent of the tenant"}
    }
    with pytest.raises(InvalidArgument) as refused:
        await sup.import_customers(
            pb.ImportCustomersRequest(content=csv_file(rows), format=pb.FILE_FORMAT_CSV)
        )
    assert "rows[4].owner" in violations(refused.value)
    assert await pool.fetchval("SELECT count(*) FROM customers") == 0

    done = await sup.import_customers(
        pb.ImportCustomersRequest(content=csv_file(rows[:3]), format=pb.FILE_FORMAT_CSV)
    )
    assert done.created == 2
    owners = await pool.fetch("SELECT owner_agent_id FROM customers ORDER BY external_ref")
    assert [r["owner_agent_id"] for r in owners] == ["ann", "ann"]
